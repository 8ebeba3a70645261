package caddymodule

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/gatehouse-idp/gatehouse/sets"
)

// parseEvents parses the events block into a.Events:
//
//	events {
//		receiver <url> {                  # one per endpoint
//			events <kind>...              # default: all (login logout user_created
//			                              #   user_changed user_disabled user_enabled
//			                              #   user_deleted credential_changed)
//			audience <aud>                # default: the URL's origin
//			authorization <header value>  # e.g. "Bearer {env.HR_SET_TOKEN}"
//			private_networks              # allow a receiver inside the network
//		}
//		max_queued <n>                    # 10000
//	}
func (a *App) parseEvents(d *caddyfile.Dispenser) error {
	if a.Events != nil {
		return d.Err("events is configured twice")
	}
	ec, err := parseEventsBlock(d)
	if err != nil {
		return err
	}
	a.Events = ec
	return nil
}

func parseEventsBlock(d *caddyfile.Dispenser) (*EventsConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var ec EventsConfig
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "receiver":
			placeAt := at(d)
			r, err := parseReceiver(d)
			if err != nil {
				return nil, err
			}
			if slices.ContainsFunc(ec.Receivers, func(o sets.Receiver) bool { return o.URL == r.URL }) {
				return nil, placeAt(fmt.Errorf("events: receiver %s is configured twice", r.URL))
			}
			// A URL with placeholders is checked when they are known,
			// at start.
			if !strings.Contains(r.URL, "{") {
				if err := r.Validate(); err != nil {
					return nil, placeAt(fmt.Errorf("events: %v", err))
				}
			}
			ec.Receivers = append(ec.Receivers, r)
		case "max_queued":
			var v string
			if err := oneArg(d, &v); err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, d.Errf("events: max_queued must be a positive whole number, not %q", v)
			}
			ec.MaxQueued = n
		default:
			return nil, d.Errf("unknown events option %q (receiver, max_queued)", opt)
		}
	}
	if len(ec.Receivers) == 0 {
		return nil, d.Err("events needs at least one receiver")
	}
	return &ec, nil
}

func parseReceiver(d *caddyfile.Dispenser) (sets.Receiver, error) {
	var r sets.Receiver
	if err := oneArg(d, &r.URL); err != nil {
		return r, err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "events":
			if len(r.Events) > 0 {
				return r, d.Err("receiver: events is given twice")
			}
			if err := someArgs(d, &r.Events); err != nil {
				return r, err
			}
			if err := sets.ParseKinds(r.Events); err != nil {
				return r, d.Errf("receiver %s: %v", r.URL, err)
			}
		case "audience":
			if err := oneArg(d, &r.Audience); err != nil {
				return r, err
			}
		case "authorization":
			if err := oneArg(d, &r.Authorization); err != nil {
				return r, err
			}
		case "private_networks":
			if d.NextArg() {
				return r, d.ArgErr()
			}
			r.PrivateNetworks = true
		default:
			return r, d.Errf("unknown receiver option %q (events, audience, authorization, private_networks)", opt)
		}
	}
	return r, nil
}
