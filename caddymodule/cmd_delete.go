package caddymodule

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

func userDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use: "delete <username>", Short: "Delete a user: sessions ended, tokens revoked, factors removed, the account gone", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var out struct {
				Ended int `json:"sessions_ended"`
			}
			if err := adminCall(c, http.MethodPost, "/gatehouse/users/delete", userRequest{Username: args[0]}, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "deleted user %s (%d sessions ended)\n", args[0], out.Ended)
			return nil
		},
	}
}

func clientDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use: "delete <id>", Short: "Delete a client added with the CLI or registered (Caddyfile clients are removed there)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := adminCall(c, http.MethodPost, "/gatehouse/clients/delete", map[string]string{"client_id": args[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "deleted client %s\n", args[0])
			return nil
		},
	}
}
