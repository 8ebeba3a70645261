package caddymodule

import (
	"fmt"
	"net/http"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// actionCommands are `caddy gatehouse user actions` (the chain modules'
// admin commands) and `caddy gatehouse user action <username> <module>
// <action>` (run one).
func actionCommands() []*cobra.Command {
	list := &cobra.Command{
		Use: "actions", Short: "List the admin actions of the chain's modules", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var acts []struct {
				Module, Kind, Action, Description string
				ForgetDevices                     bool `json:"forget_devices"`
			}
			if err := adminCall(c, http.MethodGet, "/gatehouse/modules/actions", nil, &acts); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MODULE\tKIND\tACTION\tDESCRIPTION")
			for _, a := range acts {
				desc := a.Description
				if a.ForgetDevices {
					desc += " (forgets trusted devices)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Module, a.Kind, a.Action, desc)
			}
			return tw.Flush()
		},
	}
	run := &cobra.Command{
		Use: "action <username> <module> <action>", Short: "Run a chain module's admin action on a user (see: user actions)", Args: cobra.ExactArgs(3),
		RunE: func(c *cobra.Command, args []string) error {
			var out moduleActionResponse
			err := adminCall(c, http.MethodPost, "/gatehouse/users/module-action", moduleActionRequest{Username: args[0], Module: args[1], Action: args[2]}, &out)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s; %d trusted devices forgotten\n", out.Message, out.DevicesForgotten)
			return nil
		},
	}
	return []*cobra.Command{list, run}
}
