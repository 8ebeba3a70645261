package caddymodule

import (
	"fmt"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/gatehouse-idp/gatehouse/web"
)

// BrandingConfig is how the pages look: the organisation's name, logo,
// accent colour, extra CSS and templates replacing built-in ones.
//
//	branding {
//		name "Acme Sign-in"
//		logo /etc/gatehouse/logo.svg
//		accent 0a7f5a   # or "#0a7f5a": a bare # starts a comment
//		css /etc/gatehouse/extra.css
//		templates /etc/gatehouse/templates
//	}
type BrandingConfig struct {
	// Name replaces "Gatehouse" in page titles and the footer.
	Name string `json:"name,omitempty"`
	// Logo is an image file (PNG, JPEG, GIF, WebP or SVG, at most 256 KiB).
	Logo string `json:"logo,omitempty"`
	// Accent is the colour of buttons and links (#rgb or #rrggbb; in a
	// Caddyfile without the #, or quoted).
	Accent string `json:"accent,omitempty"`
	// CSS is a file appended to the stylesheet (at most 64 KiB).
	CSS string `json:"css,omitempty"`
	// Templates is a folder of .html files replacing the built-in
	// templates of the same names.
	Templates string `json:"templates,omitempty"`
}

func (a *App) parseBranding(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if a.Branding != nil {
		return d.Err("branding is configured twice")
	}
	b := &BrandingConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		dst := map[string]*string{"name": &b.Name, "logo": &b.Logo, "accent": &b.Accent, "css": &b.CSS, "templates": &b.Templates}[opt]
		if dst == nil {
			return d.Errf("unknown branding option %q (name, logo, accent, css, templates)", opt)
		}
		if err := oneArg(d, dst); err != nil {
			if opt == "accent" {
				return d.Err("accent takes one colour: write it without # (a comment in a Caddyfile) or quoted, like 0a7f5a or \"#0a7f5a\"")
			}
			return err
		}
		if opt == "accent" && !strings.HasPrefix(b.Accent, "#") {
			b.Accent = "#" + b.Accent
		}
		// What can be checked without the files is checked here, at
		// its line.
		if err := web.CheckBrand(web.Brand{Name: b.Name, Accent: b.Accent}); err != nil {
			return d.Err(err.Error())
		}
	}
	a.Branding = b
	return nil
}

// apply reads the branding's files and puts the look in force (the
// default look without branding).
func (b *BrandingConfig) apply() error {
	wb := web.Brand{}
	if b != nil {
		wb.Name, wb.Accent = b.Name, b.Accent
		var err error
		if b.Logo != "" {
			if wb.Logo, err = readSmall(b.Logo, "logo"); err != nil {
				return err
			}
		}
		if b.CSS != "" {
			if wb.CSS, err = readSmall(b.CSS, "css"); err != nil {
				return err
			}
		}
		if b.Templates != "" {
			if wb.Templates, err = web.BrandFromDir(b.Templates); err != nil {
				return err
			}
		}
	}
	return web.SetBrand(wb)
}

// readSmall reads a branding file, refusing one far beyond any limit
// before reading it all.
func readSmall(path, what string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("branding: %s: %w", what, err)
	}
	if fi.Size() > 1<<20 {
		return nil, fmt.Errorf("branding: %s %s is %d KiB: far too large", what, path, fi.Size()>>10)
	}
	return os.ReadFile(path)
}
