package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/gatehouse-idp/gatehouse/mail"
)

// parseMail parses the mail block into a.Mail:
//
//	mail {
//		from "Acme <noreply@acme.example>"
//		smtp <host:port> {
//			username <name>
//			password <password>      # e.g. {env.SMTP_PASSWORD}
//			tls|starttls|none        # default: tls on port 465, else starttls
//			timeout <duration>       # 30s
//		}
//		templates <dir>              # files replacing built-in templates
//		outbox <dir>                 # only without smtp
//	}
func (a *App) parseMail(d *caddyfile.Dispenser) error {
	if a.Mail != nil {
		return d.Err("mail is configured twice")
	}
	mc, err := parseMailBlock(d)
	if err != nil {
		return err
	}
	a.Mail = mc
	return nil
}

func parseMailBlock(d *caddyfile.Dispenser) (*MailConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var mc MailConfig
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "from":
			if err := oneArg(d, &mc.From); err != nil {
				return nil, err
			}
			if err := (&MailConfig{From: mc.From}).validate(); err != nil {
				return nil, d.Errf("mail %v", err)
			}
		case "templates":
			if err := oneArg(d, &mc.Templates); err != nil {
				return nil, err
			}
		case "outbox":
			if err := oneArg(d, &mc.Outbox); err != nil {
				return nil, err
			}
		case "smtp":
			if mc.SMTP != nil {
				return nil, d.Err("mail: smtp is configured twice")
			}
			sc, err := parseSMTP(d)
			if err != nil {
				return nil, err
			}
			mc.SMTP = sc
		default:
			return nil, d.Errf("unknown mail option %q (from, smtp, templates, outbox)", opt)
		}
	}
	if err := mc.validate(); err != nil {
		return nil, d.Errf("mail: %v", err)
	}
	return &mc, nil
}

func parseSMTP(d *caddyfile.Dispenser) (*MailSMTPConfig, error) {
	var sc MailSMTPConfig
	if err := oneArg(d, &sc.Address); err != nil {
		return nil, err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "username":
			if err := oneArg(d, &sc.Username); err != nil {
				return nil, err
			}
		case "password":
			if err := oneArg(d, &sc.Password); err != nil {
				return nil, err
			}
		case mail.SecurityTLS, mail.SecurityStartTLS, mail.SecurityNone:
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if sc.Security != "" {
				return nil, d.Errf("smtp: %s and %s: choose one of tls, starttls, none", sc.Security, opt)
			}
			sc.Security = opt
		case "timeout":
			var s string
			if err := oneArg(d, &s); err != nil {
				return nil, err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return nil, d.Errf("smtp timeout: %q is not a positive duration", s)
			}
			sc.Timeout = caddy.Duration(dur)
		default:
			return nil, d.Errf("unknown smtp option %q (username, password, tls, starttls, none, timeout)", opt)
		}
	}
	return &sc, nil
}
