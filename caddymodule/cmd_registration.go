package caddymodule

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/provider"
)

// clientTokenCommand is `caddy gatehouse client token create`: an
// initial access token for dynamic client registration, printed once.
func clientTokenCommand() *cobra.Command {
	token := &cobra.Command{Use: "token", Short: "Initial access tokens for dynamic client registration"}
	create := &cobra.Command{
		Use: "create [--ttl 24h] [--uses N]", Short: "Make an initial access token (printed once)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ttl, _ := c.Flags().GetDuration("ttl")
			uses, _ := c.Flags().GetInt("uses")
			var out registrationToken
			err := adminCall(c, http.MethodPost, "/gatehouse/registration-tokens",
				registrationTokenRequest{TTL: caddy.Duration(ttl), Uses: uses}, &out)
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "initial_access_token: %s\n", out.Token)
			fmt.Fprintf(w, "good for %d registration(s) at %s until %s\n(shown only now; send it as Authorization: Bearer <token>)\n",
				out.Uses, out.RegistrationEndpoint, out.Expires.Format(time.RFC3339))
			if out.Policy != provider.RegistrationInitialAccessToken {
				fmt.Fprintf(c.ErrOrStderr(), "note: registration is %q in the running configuration; the token is used only under initial_access_token\n", out.Policy)
			}
			return nil
		},
	}
	create.Flags().Duration("ttl", 24*time.Hour, "How long the token can be used")
	create.Flags().Int("uses", 1, "How many registrations it allows")
	token.AddCommand(create)
	return token
}
