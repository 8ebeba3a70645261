package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/admin"
)

// bansCommand is `caddy gatehouse bans list|add|remove`.
func bansCommand() *cobra.Command {
	bans := &cobra.Command{Use: "bans", Short: "List, add and lift bans of guessing"}
	keyFlags := func(c *cobra.Command) {
		c.Flags().String("user", "", "A username")
		c.Flags().String("ip", "", "A client address (IPv6: its /64)")
		c.Flags().String("client", "", "An OAuth client id")
		c.Flags().String("key", "", "A key as listed (user:…, ip:…, client:…)")
	}
	request := func(c *cobra.Command) (banRequest, error) {
		var req banRequest
		req.User, _ = c.Flags().GetString("user")
		req.IP, _ = c.Flags().GetString("ip")
		req.Client, _ = c.Flags().GetString("client")
		req.Key, _ = c.Flags().GetString("key")
		if req.User == "" && req.IP == "" && req.Client == "" && req.Key == "" {
			return req, errors.New("name what: --user, --ip, --client or --key")
		}
		return req, nil
	}
	list := &cobra.Command{
		Use: "list", Short: "List active bans", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var out []admin.BanInfo
			if err := adminCall(c, http.MethodGet, "/gatehouse/bans", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tUSER\tUNTIL\tBANS\tBY")
			for _, b := range out {
				by := "regulation"
				if b.Manual {
					by = "admin"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", b.Key, b.User, b.Until.Format(time.RFC3339), b.Bans, by)
			}
			return tw.Flush()
		},
	}
	add := &cobra.Command{
		Use: "add --user U | --ip A | --client C [--for 1h]", Short: "Ban a key by hand", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			req, err := request(c)
			if err != nil {
				return err
			}
			d, _ := c.Flags().GetDuration("for")
			req.Duration = caddy.Duration(d)
			var out admin.BanInfo
			if err := adminCall(c, http.MethodPost, "/gatehouse/bans", req, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s banned until %s\n", out.Key, out.Until.Format(time.RFC3339))
			return nil
		},
	}
	keyFlags(add)
	add.Flags().Duration("for", time.Hour, "How long")
	remove := &cobra.Command{
		Use: "remove --user U | --ip A | --client C | --key K", Short: "Lift a ban and forget the failures", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			req, err := request(c)
			if err != nil {
				return err
			}
			var out struct {
				Key       string `json:"key"`
				WasBanned bool   `json:"was_banned"`
			}
			if err := adminCall(c, http.MethodPost, "/gatehouse/bans/lift", req, &out); err != nil {
				return err
			}
			if out.WasBanned {
				fmt.Fprintf(c.OutOrStdout(), "ban of %s lifted\n", out.Key)
			} else {
				fmt.Fprintf(c.OutOrStdout(), "%s was not banned; its failures are forgotten\n", out.Key)
			}
			return nil
		},
	}
	keyFlags(remove)
	bans.AddCommand(list, add, remove)
	return bans
}
