package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/users"
)

// profileCommand is `caddy gatehouse user set`: the claims of a user's
// profile (what the scopes release). Only the flags given change.
func profileCommand() *cobra.Command {
	strFlags := map[string]string{
		"email": "Email address (marks it unverified unless --email-verified)", "name": "Full name",
		"given-name": "Given name", "family-name": "Family name", "middle-name": "Middle name", "nickname": "Nickname",
		"picture": "Picture URL", "website": "Web site URL", "locale": "Locale (BCP 47, e.g. en-GB)",
		"zoneinfo": "Time zone (e.g. Europe/Paris)", "phone": "Phone number (E.164 recommended: +1 555 0100)",
		"street": "Address: street", "locality": "Address: city", "region": "Address: region",
		"postal-code": "Address: postal code", "country": "Address: country", "formatted-address": "Address: the full address as one text",
	}
	cmd := &cobra.Command{
		Use: "set <username>", Short: "Set a user's profile: name, email, phone, address, locale, attributes", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			f := c.Flags()
			req := profileRequest{Username: args[0]}
			str := func(name string) *string {
				if !f.Changed(name) {
					return nil
				}
				v, _ := f.GetString(name)
				return &v
			}
			boolean := func(name string) *bool {
				if !f.Changed(name) {
					return nil
				}
				v, _ := f.GetBool(name)
				return &v
			}
			req.Email, req.EmailVerified, req.Name = str("email"), boolean("email-verified"), str("name")
			req.GivenName, req.FamilyName, req.MiddleName = str("given-name"), str("family-name"), str("middle-name")
			req.Nickname, req.Picture, req.Website = str("nickname"), str("picture"), str("website")
			req.Locale, req.Zoneinfo = str("locale"), str("zoneinfo")
			req.PhoneNumber, req.PhoneNumberVerified = str("phone"), boolean("phone-verified")
			addr := &users.Address{}
			changed := false
			for flag, dst := range map[string]*string{"street": &addr.StreetAddress, "locality": &addr.Locality, "region": &addr.Region,
				"postal-code": &addr.PostalCode, "country": &addr.Country, "formatted-address": &addr.Formatted} {
				if v := str(flag); v != nil {
					*dst, changed = *v, true
				}
			}
			if changed {
				req.Address = addr
			}
			attrs, _ := f.GetStringArray("attr")
			for _, kv := range attrs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return errors.New("--attr takes name=value (an empty value removes the attribute)")
				}
				if req.Attributes == nil {
					req.Attributes = map[string]string{}
				}
				req.Attributes[k] = v
			}
			var out map[string]any
			if err := adminCall(c, http.MethodPost, "/gatehouse/users/profile", req, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "profile of %s updated\n", args[0])
			return nil
		},
	}
	for name, usage := range strFlags {
		cmd.Flags().String(name, "", usage)
	}
	cmd.Flags().Bool("email-verified", false, "Mark the email address as verified")
	cmd.Flags().Bool("phone-verified", false, "Mark the phone number as verified")
	cmd.Flags().StringArray("attr", nil, "Further claim as name=value (repeat), e.g. aq:location=Paris or an admin-defined scope's claim")
	return cmd
}
