package oidc

import (
	"errors"
	"regexp"

	"github.com/gatehouse-idp/gatehouse/chain"
)

// Presets are oidc with a provider's defaults: its issuer (overridable,
// for a self-hosted GitLab or a national cloud), its name on the button,
// and what its claims mean. Each is a kind of its own, with the oidc
// settings.

// GoogleSettings are an oidc module's settings for Google (issuer
// https://accounts.google.com). Limit sign-in to a Google Workspace
// with allowed_domains.
type GoogleSettings Settings

// MicrosoftSettings are for Microsoft Entra ID: tenant (the directory's
// id) gives the issuer https://login.microsoftonline.com/<tenant>/v2.0.
// Entra's email claim is not verified: an address counts as verified
// only with the optional claim xms_edov (configure it in the app's token
// configuration).
type MicrosoftSettings Settings

// GitLabSettings are for GitLab (issuer https://gitlab.com; set issuer
// for a self-hosted instance). Groups come from the userinfo's groups.
type GitLabSettings Settings

// LinkedInSettings are for "Sign In with LinkedIn using OpenID Connect"
// (issuer https://www.linkedin.com/oauth).
type LinkedInSettings Settings

// Validate applies Google's defaults and checks the settings.
func (s *GoogleSettings) Validate() error {
	return preset((*Settings)(s), "https://accounts.google.com", "Google")
}

// Validate applies Microsoft's defaults and checks the settings.
func (s *MicrosoftSettings) Validate() error {
	x := (*Settings)(s)
	if x.Issuer == "" {
		if !tenantID.MatchString(x.Tenant) {
			return errors.New("tenant (the directory's id, a GUID) is required, or an issuer")
		}
		x.Issuer = "https://login.microsoftonline.com/" + x.Tenant + "/v2.0"
	}
	if x.EmailVerifiedClaim == "" {
		x.EmailVerifiedClaim = "xms_edov"
	}
	return preset(x, "", "Microsoft")
}

// tenantID: Entra's common, organizations and consumers endpoints have
// no single issuer to verify tokens against; a tenant's id has.
var tenantID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate applies GitLab's defaults and checks the settings.
func (s *GitLabSettings) Validate() error {
	return preset((*Settings)(s), "https://gitlab.com", "GitLab")
}

// Validate applies LinkedIn's defaults and checks the settings.
func (s *LinkedInSettings) Validate() error {
	return preset((*Settings)(s), "https://www.linkedin.com/oauth", "LinkedIn")
}

func preset(s *Settings, issuer, label string) error {
	if s.Issuer == "" {
		s.Issuer = issuer
	}
	if s.Label == "" {
		s.Label = label
	}
	return s.validate()
}

func init() {
	chain.Register("google", func(d chain.Deps, s GoogleSettings) (chain.Module, error) { return New(d, Settings(s), "google") })
	chain.Register("microsoft", func(d chain.Deps, s MicrosoftSettings) (chain.Module, error) { return New(d, Settings(s), "microsoft") })
	chain.Register("gitlab", func(d chain.Deps, s GitLabSettings) (chain.Module, error) { return New(d, Settings(s), "gitlab") })
	chain.Register("linkedin", func(d chain.Deps, s LinkedInSettings) (chain.Module, error) { return New(d, Settings(s), "linkedin") })
}
