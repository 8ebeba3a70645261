package caddymodule

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap/exp/zapslog"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/users"
)

// RuleConfig tunes the regulation of one kind of key (see
// regulate.Rule); unset fields keep their defaults.
type RuleConfig struct {
	// MaxRetries failures within FindTime ban the key.
	MaxRetries int `json:"max_retries,omitempty"`
	// FindTime is the window failures are counted in.
	FindTime caddy.Duration `json:"find_time,omitempty"`
	// BanTime is the first ban, doubled by each further ban within a
	// day up to MaxBanTime.
	BanTime    caddy.Duration `json:"ban_time,omitempty"`
	MaxBanTime caddy.Duration `json:"max_ban_time,omitempty"`
	// FreeRetries failures are free; later ones wait Delay, doubled.
	FreeRetries *int           `json:"free_retries,omitempty"`
	Delay       caddy.Duration `json:"delay,omitempty"`
}

// HashingConfig sets argon2id and how many checks run at once.
type HashingConfig struct {
	// MemoryKiB per check (default 19456, OWASP's recommendation).
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	// Time: passes (default 2). Threads: parallelism (default 1).
	Time    uint32 `json:"time,omitempty"`
	Threads uint8  `json:"threads,omitempty"`
	// Concurrency bounds the checks running at once (default twice the
	// CPUs); a request waits at most Wait (default 3s) for a turn, then
	// gets a "busy" page (503, Retry-After).
	Concurrency int            `json:"concurrency,omitempty"`
	Wait        caddy.Duration `json:"wait,omitempty"`
}

// policy turns the regulation settings into a policy over the defaults.
func regulationPolicy(cfg map[string]RuleConfig) (regulate.Policy, error) {
	p := regulate.DefaultPolicy()
	for kind, rc := range cfg {
		r, ok := p[kind]
		if !ok {
			return nil, fmt.Errorf("regulation: unknown key kind %q (user, ip, client)", kind)
		}
		if rc.MaxRetries != 0 {
			r.MaxRetries = rc.MaxRetries
		}
		if rc.FindTime != 0 {
			r.FindTime = time.Duration(rc.FindTime)
		}
		if rc.BanTime != 0 {
			r.BanTime = time.Duration(rc.BanTime)
		}
		if rc.MaxBanTime != 0 {
			r.MaxBanTime = time.Duration(rc.MaxBanTime)
		}
		if r.MaxBanTime < r.BanTime {
			r.MaxBanTime = r.BanTime
		}
		if rc.FreeRetries != nil {
			r.FreeRetries = *rc.FreeRetries
		}
		if rc.Delay != 0 {
			r.Delay = time.Duration(rc.Delay)
		}
		p[kind] = r
	}
	return p, p.Validate()
}

func (h *HashingConfig) hasher() (*users.Hasher, error) {
	var c HashingConfig
	if h != nil {
		c = *h
	}
	return users.NewHasher(users.Argon2Params{Memory: c.MemoryKiB, Time: c.Time, Threads: c.Threads}, c.Concurrency, time.Duration(c.Wait))
}

// hstsHeader is the Strict-Transport-Security value for the setting:
// default a year, "off" none.
func hstsHeader(setting string) string {
	switch setting {
	case "":
		return "max-age=31536000"
	case "off":
		return ""
	}
	return setting
}

// auditLog writes security events under the logger name
// "gatehouse.audit", which Caddy's log configuration can route on its
// own (`log { include gatehouse.audit … }`).
func auditLog(ctx caddy.Context) *audit.Log {
	core := ctx.Logger().Core()
	return audit.New(slog.New(zapslog.NewHandler(core, zapslog.WithName("gatehouse.audit"))))
}

// parseRegulation parses:
//
//	regulation {
//		user|ip|client {
//			max_retries <n>
//			find_time <duration>
//			ban_time <duration>
//			max_ban_time <duration>
//			free_retries <n>
//			delay <duration>
//		}
//	}
func parseRegulation(d *caddyfile.Dispenser) (map[string]RuleConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	out := map[string]RuleConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		kind := d.Val()
		if kind != regulate.KindUser && kind != regulate.KindIP && kind != regulate.KindClient {
			return nil, d.Errf("regulation: unknown key kind %q (user, ip, client)", kind)
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		var rc RuleConfig
		for inner := d.Nesting(); d.NextBlock(inner); {
			opt := d.Val()
			var v string
			if err := oneArg(d, &v); err != nil {
				return nil, err
			}
			switch opt {
			case "max_retries", "free_retries":
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return nil, d.Errf("regulation %s: %s must be a whole number, not %q", kind, opt, v)
				}
				if opt == "max_retries" {
					rc.MaxRetries = n
				} else {
					rc.FreeRetries = &n
				}
			case "find_time", "ban_time", "max_ban_time", "delay":
				dur, err := caddy.ParseDuration(v)
				if err != nil || dur <= 0 {
					return nil, d.Errf("regulation %s: %s: %q is not a positive duration", kind, opt, v)
				}
				*map[string]*caddy.Duration{"find_time": &rc.FindTime, "ban_time": &rc.BanTime,
					"max_ban_time": &rc.MaxBanTime, "delay": &rc.Delay}[opt] = caddy.Duration(dur)
			default:
				return nil, d.Errf("regulation %s: unknown option %q (max_retries, find_time, ban_time, max_ban_time, free_retries, delay)", kind, opt)
			}
		}
		out[kind] = rc
	}
	if _, err := regulationPolicy(out); err != nil {
		return nil, d.Err(err.Error())
	}
	return out, nil
}

// parsePasswordPolicy parses `password_policy { min_length <n>  max_length <n>  min_strength <0-4> }`.
func parsePasswordPolicy(d *caddyfile.Dispenser) (*users.PasswordPolicy, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	p := users.DefaultPasswordPolicy()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var v string
		if err := oneArg(d, &v); err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, d.Errf("password_policy: %s must be a whole number, not %q", opt, v)
		}
		switch opt {
		case "min_length":
			p.MinLength = n
		case "max_length":
			p.MaxLength = n
		case "min_strength":
			p.MinStrength = n
		default:
			return nil, d.Errf("password_policy: unknown option %q (min_length, max_length, min_strength)", opt)
		}
	}
	if err := p.Validate(); err != nil {
		return nil, d.Err(err.Error())
	}
	return &p, nil
}

// parseHashing parses:
//
//	password_hashing {
//		memory <size, e.g. 19MiB or 19456 (KiB)>
//		time <n>
//		threads <n>
//		concurrency <n>
//		wait <duration>
//	}
func parseHashing(d *caddyfile.Dispenser) (*HashingConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var h HashingConfig
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var v string
		if err := oneArg(d, &v); err != nil {
			return nil, err
		}
		switch opt {
		case "memory":
			kib, err := parseKiB(v)
			if err != nil {
				return nil, d.Errf("password_hashing memory: %v", err)
			}
			h.MemoryKiB = kib
		case "time", "threads", "concurrency":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 1<<16 {
				return nil, d.Errf("password_hashing %s must be a positive number, not %q", opt, v)
			}
			switch opt {
			case "time":
				h.Time = uint32(n)
			case "threads":
				if n > 255 {
					return nil, d.Errf("password_hashing threads must be at most 255")
				}
				h.Threads = uint8(n)
			default:
				h.Concurrency = n
			}
		case "wait":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("password_hashing wait: %q is not a positive duration", v)
			}
			h.Wait = caddy.Duration(dur)
		default:
			return nil, d.Errf("password_hashing: unknown option %q (memory, time, threads, concurrency, wait)", opt)
		}
	}
	if _, err := h.hasher(); err != nil {
		return nil, d.Err(err.Error())
	}
	return &h, nil
}

// parseKiB reads "19MiB", "64MB" (MiB), "19456KiB" or "19456" (KiB).
func parseKiB(v string) (uint32, error) {
	mult := uint64(1)
	num := v
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"GiB", 1 << 20}, {"GB", 1 << 20}, {"MiB", 1 << 10}, {"MB", 1 << 10}, {"KiB", 1}, {"KB", 1}} {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			num, mult = s, u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || n == 0 || n*mult > 1<<22 {
		return 0, fmt.Errorf("%q is not a memory size such as 19MiB", v)
	}
	return uint32(n * mult), nil
}
