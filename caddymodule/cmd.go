package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gatehouse-idp/gatehouse/admin"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "gatehouse",
		Usage: "user|client|session|keys|bans|store ...",
		Short: "Manages Gatehouse users, clients and signing keys in a running Caddy",
		Long: `
Manages Gatehouse through the admin API of the running Caddy (the store is
a file that the running Caddy holds open, so changes go through it).

  caddy gatehouse user add <username> [--email E] [--name N] [--group G]...
  caddy gatehouse user passwd <username>
  caddy gatehouse user disable <username> [--enable]
  caddy gatehouse user set <username> [--phone P] [--locality L] [--attr k=v]...
  caddy gatehouse user groups <username> [group...]
  caddy gatehouse user reset-totp <username>
  caddy gatehouse user actions
  caddy gatehouse user action <username> <module> <action>
  caddy gatehouse user forget-devices <username>
  caddy gatehouse user list
  caddy gatehouse user delete <username>
  caddy gatehouse client add <id> --redirect-uri URI... [--public] [--name N]
  caddy gatehouse client list
  caddy gatehouse client delete <id>
  caddy gatehouse client token create [--ttl 24h] [--uses N]
  caddy gatehouse session list [--user <username>]
  caddy gatehouse session revoke --user <username> | --sid <sid>
  caddy gatehouse keys rotate
  caddy gatehouse bans list
  caddy gatehouse bans add --user U | --ip A | --client C [--for 1h]
  caddy gatehouse bans remove --user U | --ip A | --client C | --key K
  caddy gatehouse store export [--out FILE] [--gzip]
  caddy gatehouse store import <file> [--replace] [--force] [--no-reload]

Passwords are asked on the terminal, or read from the first line of
standard input with --password-stdin. The admin address is found like
'caddy reload' finds it: --address, else the one in --config, else the
default localhost:2019.`,
		CobraFunc: buildCommand,
	})
}

func buildCommand(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.String("config", "", "Configuration file of the running Caddy (to find its admin address)")
	pf.String("adapter", "", "Name of the config adapter for --config")
	pf.String("address", "", "Address of the running Caddy's admin API")

	user := &cobra.Command{Use: "user", Short: "Manage users"}
	userAdd := &cobra.Command{
		Use: "add <username>", Short: "Add a user", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			email, _ := c.Flags().GetString("email")
			name, _ := c.Flags().GetString("name")
			groups, _ := c.Flags().GetStringSlice("group")
			verified, _ := c.Flags().GetBool("email-verified")
			pw, err := readPassword(c)
			if err != nil {
				return err
			}
			var out map[string]any
			err = adminCall(c, http.MethodPost, "/gatehouse/users", userRequest{
				Username: args[0], Email: email, EmailVerified: verified, Name: name, Groups: groups, Password: pw,
			}, &out)
			if err == nil {
				fmt.Fprintf(c.OutOrStdout(), "added user %s (subject %v)\n", args[0], out["sub"])
			}
			return err
		},
	}
	userAdd.Flags().String("email", "", "Email address")
	userAdd.Flags().Bool("email-verified", false, "Mark the email address as verified")
	userAdd.Flags().String("name", "", "Full name")
	userAdd.Flags().StringSlice("group", nil, "Group (repeat or comma-separate)")
	userAdd.Flags().Bool("password-stdin", false, "Read the password from standard input")

	userPasswd := &cobra.Command{
		Use: "passwd <username>", Short: "Set a user's password", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			pw, err := readPassword(c)
			if err != nil {
				return err
			}
			err = adminCall(c, http.MethodPost, "/gatehouse/users/password", userRequest{Username: args[0], Password: pw}, nil)
			if err == nil {
				fmt.Fprintf(c.OutOrStdout(), "password of %s changed\n", args[0])
			}
			return err
		},
	}
	userPasswd.Flags().Bool("password-stdin", false, "Read the password from standard input")

	userDisable := &cobra.Command{
		Use: "disable <username>", Short: "Disable (or with --enable, re-enable) a user", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			enable, _ := c.Flags().GetBool("enable")
			err := adminCall(c, http.MethodPost, "/gatehouse/users/disabled", userRequest{Username: args[0], Disabled: !enable}, nil)
			if err == nil {
				state := "disabled"
				if enable {
					state = "enabled"
				}
				fmt.Fprintf(c.OutOrStdout(), "user %s %s\n", args[0], state)
			}
			return err
		},
	}
	userDisable.Flags().Bool("enable", false, "Enable the user again")

	userGroups := &cobra.Command{
		Use: "groups <username> [group...]", Short: "Set a user's groups (none: remove from all)", Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			groups := args[1:]
			if groups == nil {
				groups = []string{}
			}
			err := adminCall(c, http.MethodPost, "/gatehouse/users/groups", userRequest{Username: args[0], Groups: groups}, nil)
			if err == nil {
				fmt.Fprintf(c.OutOrStdout(), "groups of %s: %s\n", args[0], strings.Join(groups, ","))
			}
			return err
		},
	}

	simple := func(use, short, path, done string) *cobra.Command {
		return &cobra.Command{
			Use: use + " <username>", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				var out map[string]any
				err := adminCall(c, http.MethodPost, path, userRequest{Username: args[0]}, &out)
				if err == nil {
					fmt.Fprintf(c.OutOrStdout(), done+"\n", args[0], out["devices_forgotten"])
				}
				return err
			},
		}
	}
	userResetTOTP := simple("reset-totp", "Remove a user's TOTP (they enrol again at next login)", "/gatehouse/users/reset-totp",
		"TOTP of %s removed; %v trusted devices forgotten")
	userForget := simple("forget-devices", "Forget every device a user chose to trust", "/gatehouse/users/forget-devices",
		"%s: %v trusted devices forgotten")

	userList := &cobra.Command{
		Use: "list", Short: "List users", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var list []struct {
				Sub, Username, Email, Name string
				Groups                     []string
				Disabled, Inactive         bool
				Federation                 *struct{ Source string }
			}
			if err := adminCall(c, http.MethodGet, "/gatehouse/users", nil, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USERNAME\tEMAIL\tNAME\tGROUPS\tSTATE\tSOURCE\tSUBJECT")
			for _, u := range list {
				state := "active"
				switch {
				case u.Disabled:
					state = "disabled"
				case u.Inactive:
					state = "inactive" // awaiting activation
				}
				source := "local"
				if u.Federation != nil {
					source = u.Federation.Source
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, u.Email, u.Name, strings.Join(u.Groups, ","), state, source, u.Sub)
			}
			return tw.Flush()
		},
	}
	user.AddCommand(userAdd, userPasswd, userDisable, userGroups, userResetTOTP, userForget, userList, profileCommand())
	user.AddCommand(actionCommands()...)
	user.AddCommand(userDeleteCommand())

	client := &cobra.Command{Use: "client", Short: "Manage OIDC clients"}
	clientAdd := &cobra.Command{
		Use: "add <id>", Short: "Register a client (prints its secret once)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			f := c.Flags()
			name, _ := f.GetString("name")
			public, _ := f.GetBool("public")
			uris, _ := f.GetStringSlice("redirect-uri")
			scopes, _ := f.GetStringSlice("scope")
			logout, _ := f.GetStringSlice("post-logout-redirect-uri")
			bcl, _ := f.GetString("backchannel-logout-uri")
			firstParty, _ := f.GetBool("first-party")
			grants, _ := f.GetStringSlice("grant-type")
			var out struct {
				ClientSecret string `json:"client_secret"`
			}
			err := adminCall(c, http.MethodPost, "/gatehouse/clients", map[string]any{
				"client_id": args[0], "name": name, "public": public, "redirect_uris": uris, "scopes": scopes,
				"post_logout_redirect_uris": logout, "backchannel_logout_uri": bcl,
				"first_party": firstParty, "grant_types": grants,
			}, &out)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "added client %s\n", args[0])
			if out.ClientSecret != "" {
				fmt.Fprintf(c.OutOrStdout(), "client_secret: %s\n(shown only now; store it in the application's configuration)\n", out.ClientSecret)
			}
			return nil
		},
	}
	clientAdd.Flags().String("name", "", "Name shown to users")
	clientAdd.Flags().Bool("public", false, "Public client (no secret; PKCE required)")
	clientAdd.Flags().StringSlice("redirect-uri", nil, "Redirect URI (repeat)")
	clientAdd.Flags().StringSlice("scope", nil, "Allowed scope (repeat; default: every scope)")
	clientAdd.Flags().Bool("first-party", false, "Your own application: users are not asked to consent")
	clientAdd.Flags().StringSlice("grant-type", nil, "Allowed grant type (repeat; default authorization_code refresh_token)")
	clientAdd.Flags().StringSlice("post-logout-redirect-uri", nil, "Post-logout redirect URI (repeat)")
	clientAdd.Flags().String("backchannel-logout-uri", "", "Back-channel logout URI")

	clientList := &cobra.Command{
		Use: "list", Short: "List clients", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var list []struct {
				ClientID     string    `json:"client_id"`
				Name         string    `json:"name"`
				Public       bool      `json:"public"`
				RedirectURIs []string  `json:"redirect_uris"`
				Static       bool      `json:"static"`
				RegisteredAt time.Time `json:"registered_at"`
			}
			if err := adminCall(c, http.MethodGet, "/gatehouse/clients", nil, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLIENT_ID\tNAME\tTYPE\tSOURCE\tREDIRECT_URIS")
			for _, cl := range list {
				typ, src := "confidential", "cli"
				if cl.Public {
					typ = "public"
				}
				switch {
				case cl.Static:
					src = "config"
				case !cl.RegisteredAt.IsZero():
					src = "registered " + cl.RegisteredAt.Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cl.ClientID, cl.Name, typ, src, strings.Join(cl.RedirectURIs, " "))
			}
			return tw.Flush()
		},
	}
	client.AddCommand(clientAdd, clientList, clientTokenCommand(), clientDeleteCommand())

	sessions := &cobra.Command{Use: "session", Short: "List and end SSO sessions"}
	sessionList := &cobra.Command{
		Use: "list [--user <username>]", Short: "List the sessions of a user, or of everyone", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			user, _ := c.Flags().GetString("user")
			path := "/gatehouse/sessions"
			if user != "" {
				path += "?user=" + url.QueryEscape(user)
			}
			var list []admin.SessionInfo
			if err := adminCall(c, http.MethodGet, path, nil, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SID\tUSER\tSTARTED\tLAST SEEN\tFROM\tMODULES\tCLIENTS")
			for _, s := range list {
				from := s.Device
				if s.IP != "" {
					from += " " + s.IP
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.SID, s.Username, s.Created.Format(time.RFC3339),
					s.LastSeen.Format(time.RFC3339), from, strings.Join(s.Modules, ","), strings.Join(s.Clients, ","))
			}
			return tw.Flush()
		},
	}
	sessionList.Flags().String("user", "", "Username")
	sessionRevoke := &cobra.Command{
		Use: "revoke --user <username> | --sid <sid>", Short: "End sessions everywhere (back-channel logout included)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			user, _ := c.Flags().GetString("user")
			sid, _ := c.Flags().GetString("sid")
			var out map[string]int
			if err := adminCall(c, http.MethodPost, "/gatehouse/sessions/revoke", map[string]string{"username": user, "sid": sid}, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%d sessions ended\n", out["revoked"])
			return nil
		},
	}
	sessionRevoke.Flags().String("user", "", "End every session of this user")
	sessionRevoke.Flags().String("sid", "", "End this session")
	sessions.AddCommand(sessionList, sessionRevoke)

	keys := &cobra.Command{Use: "keys", Short: "Manage signing keys"}
	keys.AddCommand(&cobra.Command{
		Use: "rotate", Short: "Make a new signing key active (the old one stays in JWKS until its tokens expire)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var out struct {
				Kid string `json:"active_kid"`
			}
			if err := adminCall(c, http.MethodPost, "/gatehouse/keys/rotate", struct{}{}, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "new active signing key: %s\n", out.Kid)
			return nil
		},
	})
	cmd.AddCommand(user, client, sessions, keys, bansCommand(), storeCommand())
}

// readPassword asks twice on a terminal, or reads one line from stdin.
func readPassword(c *cobra.Command) (string, error) {
	if fromStdin, _ := c.Flags().GetBool("password-stdin"); fromStdin {
		line, err := bufio.NewReader(c.InOrStdin()).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("no password on standard input")
		}
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("standard input is not a terminal: use --password-stdin")
	}
	fmt.Fprint(c.ErrOrStderr(), "Password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(c.ErrOrStderr())
	if err != nil {
		return "", err
	}
	fmt.Fprint(c.ErrOrStderr(), "Again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(c.ErrOrStderr())
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the passwords do not match")
	}
	if len(a) == 0 {
		return "", errors.New("empty password")
	}
	return string(a), nil
}

// adminCall sends a request to the running Caddy's admin API.
func adminCall(c *cobra.Command, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := adminRequest(c, method, path, nil, rd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// adminRequest sends a raw request to the running Caddy's admin API; an
// error answer becomes its message.
func adminRequest(c *cobra.Command, method, path string, hdr http.Header, body io.Reader) (*http.Response, error) {
	f := c.Flags()
	address, _ := f.GetString("address")
	config, _ := f.GetString("config")
	adapter, _ := f.GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return nil, fmt.Errorf("finding the admin API address: %w", err)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, hdr, body)
	if err != nil {
		if strings.HasPrefix(err.Error(), "performing request") {
			return nil, fmt.Errorf("caddy is not running, or its admin API is not at %s (start it with 'caddy run', or pass --address or --config): %w", addr, err)
		}
		return nil, apiMessage(err)
	}
	return resp, nil
}

// apiMessage turns Caddy's "HTTP 400: {"error":"…"}" into the message.
func apiMessage(err error) error {
	s := err.Error()
	if i := strings.Index(s, "{"); i >= 0 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(s[i:]), &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
	}
	return err
}
