package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode/utf8"
)

// The messages the chain's modules send, by template name. Each has a
// text template <name>.txt, which also defines the subject line
// ({{define "subject"}}…{{end}}), and an HTML template <name>.html,
// which fills the blocks of layout.html.
const (
	// Activation asks to confirm the address by opening link.
	Activation = "activation"
	// PasswordReset carries link, to set a new password.
	PasswordReset = "password_reset"
	// MagicLink carries link, to sign in, and code, for another device.
	MagicLink = "magic_link"
	// RegistrationWelcome says an account was created (link optional).
	RegistrationWelcome = "registration_welcome"
	// AccountExists tells the owner of an address that someone signed
	// up with it (sign-up answers as if it were free, so as not to tell
	// who has an account); link optional.
	AccountExists = "account_exists"
)

// required lists the Data a template cannot do without.
var required = map[string][]string{
	Activation:          {"link"},
	PasswordReset:       {"link"},
	MagicLink:           {"link", "code"},
	RegistrationWelcome: nil,
	AccountExists:       nil,
}

// dataKeys are the values templates may use; those a message leaves out
// are empty, so a template never prints "<no value>". "site" and "to"
// are set by the Mailer, "subject" (for the HTML title) by rendering.
var dataKeys = []string{"link", "code", "username", "name", "client_name", "expires", "site", "to", "subject"}

const layoutFile = "layout.html"

//go:embed templates
var builtin embed.FS

// Limits on what one message may hold once rendered.
const (
	maxSubject = 250   // characters
	maxBody    = 64000 // bytes, text and HTML each
)

// templates are the parsed templates of every message.
type templates struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// funcs are the helpers templates may call.
var funcs = map[string]any{"duration": humanDuration}

// loadTemplates parses the built-in templates, each replaced by the file
// of the same name in dir when dir is set and has one. A file in dir
// that names no template is an error (a misspelt override would
// otherwise be ignored), as is any template that does not parse or does
// not render with sample values.
func loadTemplates(dir string) (*templates, error) {
	overrides := map[string]bool{}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		known := []string{layoutFile}
		for name := range required {
			known = append(known, name+".txt", name+".html")
		}
		slices.Sort(known)
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if ext != ".txt" && ext != ".html" {
				continue
			}
			if !slices.Contains(known, e.Name()) {
				return nil, fmt.Errorf("mail templates: %s in %s is no template (known: %s)", e.Name(), dir, strings.Join(known, ", "))
			}
			overrides[e.Name()] = true
		}
	}
	read := func(file string) (string, string, error) {
		if overrides[file] {
			path := filepath.Join(dir, file)
			b, err := os.ReadFile(path)
			return string(b), path, err
		}
		b, err := fs.ReadFile(builtin, "templates/"+file)
		return string(b), "built-in " + file, err
	}
	layout, layoutName, err := read(layoutFile)
	if err != nil {
		return nil, fmt.Errorf("mail templates: %w", err)
	}
	t := &templates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for name := range required {
		src, where, err := read(name + ".txt")
		if err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		tt, err := texttemplate.New(name).Funcs(funcs).Parse(src)
		if err != nil {
			return nil, fmt.Errorf("mail templates: %s: %w", where, err)
		}
		if tt.Lookup("subject") == nil {
			return nil, fmt.Errorf(`mail templates: %s defines no subject line ({{define "subject"}}…{{end}})`, where)
		}
		t.text[name] = tt
		src, where, err = read(name + ".html")
		if err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		ht, err := htmltemplate.New(name).Funcs(funcs).Parse(layout)
		if err != nil {
			return nil, fmt.Errorf("mail templates: %s: %w", layoutName, err)
		}
		if ht, err = ht.Parse(src); err != nil {
			return nil, fmt.Errorf("mail templates: %s: %w", where, err)
		}
		t.html[name] = ht
		if _, _, _, err := t.render(name, sampleData()); err != nil {
			return nil, fmt.Errorf("mail templates: %s with sample values: %w", name, err)
		}
	}
	return t, nil
}

// sampleData fills every data key, to try templates out when loading.
func sampleData() map[string]any {
	return map[string]any{"link": "https://auth.example.com/login/mail?t=sample", "code": "123456", "username": "alice",
		"name": "Alice", "client_name": "Wiki", "expires": 15 * time.Minute, "site": "Example", "to": "alice@example.com"}
}

// render executes the templates of message name with data (already
// checked by Send) and returns its subject, text and HTML bodies.
func (t *templates) render(name string, data map[string]any) (subject, text, html string, err error) {
	tt, ok := t.text[name]
	if !ok {
		return "", "", "", fmt.Errorf("no message template %q", name)
	}
	d := make(map[string]any, len(data)+len(dataKeys))
	for _, k := range dataKeys {
		d[k] = ""
	}
	for k, v := range data {
		d[k] = v
	}
	var b bytes.Buffer
	if err := tt.ExecuteTemplate(&b, "subject", d); err != nil {
		return "", "", "", err
	}
	subject = strings.TrimSpace(b.String())
	switch {
	case subject == "":
		return "", "", "", errors.New("the subject line is empty")
	case utf8.RuneCountInString(subject) > maxSubject:
		return "", "", "", fmt.Errorf("the subject line is longer than %d characters", maxSubject)
	}
	if err := plainText(subject); err != nil {
		return "", "", "", fmt.Errorf("the subject line %w", err)
	}
	d["subject"] = subject
	b.Reset()
	if err := tt.Execute(&b, d); err != nil {
		return "", "", "", err
	}
	text = strings.TrimSpace(b.String()) + "\n"
	b.Reset()
	if err := t.html[name].Execute(&b, d); err != nil {
		return "", "", "", err
	}
	html = strings.TrimSpace(b.String()) + "\n"
	if len(text) > maxBody || len(html) > maxBody {
		return "", "", "", fmt.Errorf("the message is longer than %d bytes", maxBody)
	}
	return subject, text, html, nil
}

// humanDuration writes a duration in words in its largest whole unit:
// 15 minutes, 1 hour, 90 minutes, 2 days. A string is written as it is;
// anything else but a positive time.Duration writes nothing.
func humanDuration(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	d, ok := v.(time.Duration)
	if !ok || d <= 0 {
		return ""
	}
	unit := func(n time.Duration, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(int64(n), 10) + " " + one + "s"
	}
	switch day := 24 * time.Hour; {
	case d%day == 0:
		return unit(d/day, "day")
	case d%time.Hour == 0:
		return unit(d/time.Hour, "hour")
	case d%time.Minute == 0:
		return unit(d/time.Minute, "minute")
	}
	return unit((d+time.Second-1)/time.Second, "second")
}
