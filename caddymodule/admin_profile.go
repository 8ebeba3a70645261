package caddymodule

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/users"
)

// profileRequest changes the claims a user's profile releases. A nil
// field is left as it is; an empty string clears it.
type profileRequest struct {
	Username            string            `json:"username"`
	Email               *string           `json:"email,omitempty"`
	EmailVerified       *bool             `json:"email_verified,omitempty"`
	Name                *string           `json:"name,omitempty"`
	GivenName           *string           `json:"given_name,omitempty"`
	FamilyName          *string           `json:"family_name,omitempty"`
	MiddleName          *string           `json:"middle_name,omitempty"`
	Nickname            *string           `json:"nickname,omitempty"`
	Picture             *string           `json:"picture,omitempty"`
	Website             *string           `json:"website,omitempty"`
	Locale              *string           `json:"locale,omitempty"`
	Zoneinfo            *string           `json:"zoneinfo,omitempty"`
	PhoneNumber         *string           `json:"phone_number,omitempty"`
	PhoneNumberVerified *bool             `json:"phone_number_verified,omitempty"`
	Address             *users.Address    `json:"address,omitempty"`
	Attributes          map[string]string `json:"attributes,omitempty"` // "" removes one
}

// maxAttribute bounds a profile value and the attributes a user has.
const (
	maxAttribute  = 1024
	maxAttributes = 64
)

// setProfile is POST /gatehouse/users/profile.
func setProfile(a *App, w http.ResponseWriter, r *http.Request) error {
	var req profileRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	u, err := a.admin.FindUser(r.Context(), req.Username)
	if err != nil {
		return err
	}
	setAdminTarget(r, "user:"+u.Username)
	for k, v := range req.Attributes {
		if k == "" || len(k) > 64 || strings.ContainsAny(k, " \t\r\n\"\\") || len(v) > maxAttribute {
			return badRequest("attribute %q: names are 1 to 64 characters without spaces or quotes, values at most %d bytes", k, maxAttribute)
		}
	}
	u, err = a.users.Update(r.Context(), u.Subject, func(u *users.User) error {
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&u.Email, req.Email)
		set(&u.Name, req.Name)
		set(&u.GivenName, req.GivenName)
		set(&u.FamilyName, req.FamilyName)
		set(&u.MiddleName, req.MiddleName)
		set(&u.Nickname, req.Nickname)
		set(&u.Picture, req.Picture)
		set(&u.Website, req.Website)
		set(&u.Locale, req.Locale)
		set(&u.Zoneinfo, req.Zoneinfo)
		set(&u.PhoneNumber, req.PhoneNumber)
		if req.EmailVerified != nil {
			u.EmailVerified = *req.EmailVerified
		} else if req.Email != nil {
			u.EmailVerified = false // a new address is not verified
		}
		if req.PhoneNumberVerified != nil {
			u.PhoneNumberVerified = *req.PhoneNumberVerified
		} else if req.PhoneNumber != nil {
			u.PhoneNumberVerified = false
		}
		if req.Address != nil {
			u.Address = req.Address
			if u.Address.Empty() {
				u.Address = nil
			}
		}
		for k, v := range req.Attributes {
			if u.Attributes == nil {
				u.Attributes = map[string]string{}
			}
			if v == "" {
				delete(u.Attributes, k)
			} else {
				u.Attributes[k] = v
			}
		}
		if len(u.Attributes) > maxAttributes {
			return badRequest("a user has at most %d attributes", maxAttributes)
		}
		for _, v := range []string{u.Email, u.Name, u.GivenName, u.FamilyName, u.MiddleName, u.Nickname, u.Picture, u.Website, u.Locale, u.Zoneinfo, u.PhoneNumber} {
			if len(v) > maxAttribute {
				return badRequest("profile values are at most %d bytes", maxAttribute)
			}
		}
		return nil
	})
	if errors.Is(err, users.ErrTaken) {
		return caddy.APIError{HTTPStatus: http.StatusConflict, Message: err.Error()}
	} else if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, u.Public())
	return nil
}
