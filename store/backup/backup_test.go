package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store"
)

const issuer = "https://auth.example.com"

// fill writes a little of everything a Gatehouse store holds.
func fill(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	ops := []store.Op{
		store.Put("keys:signing", []byte(`{"active":"k1"}`), 0),
		store.Put("session:abc", []byte("sess"), time.Hour),
		store.Put("code:gone", []byte("c"), 50*time.Millisecond),
		store.Put("empty", []byte{}, 0),
		store.Put("bin:\xff\x00", []byte{0, 255, 1}, 0),
		store.SetAdd("users:index", "alice"),
		store.SetAdd("users:index", "bob"),
		store.SetAdd("odd\xfe", "m\xff"),
	}
	for i := range 600 {
		ops = append(ops, store.Put(fmt.Sprintf("user:%03d", i), []byte{byte(i)}, 0))
	}
	if err := s.Apply(ctx, ops...); err != nil {
		t.Fatal(err)
	}
}

// dump is everything Scan reports, TTLs rounded to the minute.
func dump(t *testing.T, s store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.Scan(context.Background(), "", func(r store.Record) error {
		if r.IsSet() {
			out["set "+r.Key] = strings.Join(r.Members, ",")
		} else {
			out["key "+r.Key] = fmt.Sprintf("%x ttl=%v", r.Value, r.TTL.Round(time.Minute))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func export(t *testing.T, s store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Export(context.Background(), s, &buf, issuer); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := memstore.New()
	fill(t, src)
	time.Sleep(60 * time.Millisecond) // code:gone expires: not exported
	file := export(t, src)
	if bytes.Contains(file, []byte("code:gone")) {
		t.Fatal("an expired record was exported")
	}
	for name, data := range map[string][]byte{"plain": file, "gzip": gz(file)} {
		t.Run(name, func(t *testing.T) {
			dst := memstore.New()
			res, err := Import(ctx, dst, bytes.NewReader(data), ImportOptions{Issuer: issuer, BatchSize: 50})
			if err != nil {
				t.Fatal(err)
			}
			if want := (Summary{Values: 604, Sets: 2, Members: 3}); res.Imported != want || res.Batches < 12 {
				t.Fatalf("imported %+v in %d batches, want %+v in several", res.Imported, res.Batches, want)
			}
			if got, want := dump(t, dst), dump(t, src); !maps.Equal(got, want) {
				t.Fatalf("imported store differs:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// A damaged, truncated or foreign file is refused with a clear error and
// nothing of it is written.
func TestRefusedFilesWriteNothing(t *testing.T) {
	src := memstore.New()
	fill(t, src)
	file := export(t, src)
	lines := bytes.SplitAfter(file, []byte("\n"))
	flip := bytes.Clone(file)
	i := bytes.Index(flip, []byte("user:300"))
	flip[i+5] = '9' // still valid JSON, another key
	other := bytes.Replace(file, []byte(issuer), []byte("https://evil.example"), 1)
	v2 := bytes.Replace(file, []byte(`"version":1`), []byte(`"version":2`), 1)
	dup := append(bytes.Join(lines[:3], nil), lines[2]...)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"not an export", []byte("hello\n"), "not a gatehouse store export"},
		{"truncated at a line", bytes.Join(lines[:len(lines)-2], nil), "truncated"},
		{"truncated mid-line", file[:len(file)/2], "line"},
		{"truncated gzip", gz(file)[:len(gz(file))/2], "cut short"},
		{"altered", flip, "checksum mismatch"},
		{"line removed", append(bytes.Join(lines[:5], nil), bytes.Join(lines[6:], nil)...), "counts"},
		{"after the end", append(bytes.Clone(file), []byte("{}\n")...), "after the end"},
		{"another issuer", other, "not \"https://auth.example.com\""},
		{"another version", v2, "format version 2"},
		{"duplicate", dup, "second time"},
		{"bad record", append(bytes.Join(lines[:2], nil), []byte(`{"key":"x"}`+"\n")...), `needs a "value"`},
		{"unknown field", append(bytes.Join(lines[:2], nil), []byte(`{"key":"x","value":"","admin":true}`+"\n")...), "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := memstore.New()
			_, err := Import(context.Background(), dst, bytes.NewReader(c.data), ImportOptions{Issuer: issuer})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Import = %v, want an error saying %q", err, c.want)
			}
			if !IsFileError(err) {
				t.Errorf("%v is not reported as a problem of the file", err)
			}
			if n := len(dump(t, dst)); n != 0 {
				t.Fatalf("%d records written from a refused file", n)
			}
		})
	}
}

func TestForce(t *testing.T) {
	src := memstore.New()
	fill(t, src)
	file := export(t, src)
	dst := memstore.New()
	if _, err := Import(context.Background(), dst, bytes.NewReader(file), ImportOptions{Issuer: "https://other", Force: true}); err != nil {
		t.Fatalf("forced import of another issuer's file: %v", err)
	}
}

// Existing keys refuse the import unless Replace; then they are
// overwritten and counted, and set members are added.
func TestConflictsAndReplace(t *testing.T) {
	ctx := context.Background()
	src := memstore.New()
	fill(t, src)
	file := export(t, src)
	dst := memstore.New()
	dst.Set(ctx, "keys:signing", []byte("fresh instance's own"), 0)
	dst.Set(ctx, "unrelated", []byte("stays"), 0)
	dst.SetAdd(ctx, "users:index", "carol")
	_, err := Import(ctx, dst, bytes.NewReader(file), ImportOptions{Issuer: issuer})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Count != 1 || ce.Keys[0] != "keys:signing" {
		t.Fatalf("Import over an existing key = %v", err)
	}
	if n := len(dump(t, dst)); n != 3 {
		t.Fatalf("a refused import wrote: %d records", n)
	}
	res, err := Import(ctx, dst, bytes.NewReader(file), ImportOptions{Issuer: issuer, Replace: true})
	if err != nil || res.Replaced != 1 {
		t.Fatalf("Import with Replace = %+v, %v", res, err)
	}
	if v, _ := dst.Get(ctx, "keys:signing"); string(v) != `{"active":"k1"}` {
		t.Fatalf("key not replaced: %q", v)
	}
	if v, _ := dst.Get(ctx, "unrelated"); string(v) != "stays" {
		t.Fatal("a key not in the file was touched")
	}
	if m, _ := dst.SetMembers(ctx, "users:index"); strings.Join(m, ",") != "alice,bob,carol" {
		t.Fatalf("set members %q, want the file's added", m)
	}
}

// Expiries are absolute: a record that expired since the export stays
// out, one still alive keeps its remaining time.
func TestExpiryBetweenExportAndImport(t *testing.T) {
	ctx := context.Background()
	src := memstore.New()
	src.Set(ctx, "short", []byte("s"), time.Minute)
	src.Set(ctx, "long", []byte("l"), 3*time.Hour)
	file := export(t, src)
	later := func() time.Time { return time.Now().Add(time.Hour) }
	dst := memstore.New()
	res, err := Import(ctx, dst, bytes.NewReader(file), ImportOptions{Issuer: issuer, Now: later})
	if err != nil || res.Expired != 1 || res.Imported.Values != 1 {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	d := dump(t, dst)
	if d["key long"] != "6c ttl=2h0m0s" || len(d) != 1 {
		t.Fatalf("after import an hour later: %v", d)
	}
}

// A store that fails part-way leaves whole batches and says how far it got.
type failAfter struct {
	store.Store
	n int
}

func (f *failAfter) Apply(ctx context.Context, ops ...store.Op) error {
	if f.n == 0 {
		return errors.New("backend down")
	}
	f.n--
	return f.Store.Apply(ctx, ops...)
}

func TestStoreFailsPartWay(t *testing.T) {
	src := memstore.New()
	fill(t, src)
	file := export(t, src)
	dst := &failAfter{Store: memstore.New(), n: 2}
	res, err := Import(context.Background(), dst, bytes.NewReader(file), ImportOptions{Issuer: issuer, BatchSize: 100})
	if err == nil || IsFileError(err) || !strings.Contains(err.Error(), "batch 3") || res.Batches != 2 || res.Imported.Values != 200 {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	if n := len(dump(t, dst)); n != 200 {
		t.Fatalf("%d records after 2 batches of 100", n)
	}
}

// FuzzRead: no input makes the reader panic, and whatever it accepts
// survives a write and a second read unchanged.
func FuzzRead(f *testing.F) {
	src := memstore.New()
	ctx := context.Background()
	src.Set(ctx, "k", []byte("v"), time.Hour)
	src.Set(ctx, "bin\xff", []byte{0}, 0)
	src.SetAdd(ctx, "s", "a", "b\xfe")
	var buf bytes.Buffer
	Export(ctx, src, &buf, issuer)
	f.Add(buf.Bytes())
	f.Add(gz(buf.Bytes()))
	f.Add([]byte(`{"format":"gatehouse-store-export","version":1}` + "\n" + `{"end":{"values":0,"sets":0,"members":0,"sha256":""}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []Entry
		h, sum, err := Read(bytes.NewReader(data), func(Header) error { return nil }, func(e Entry) error {
			got = append(got, e)
			return nil
		})
		if err != nil {
			return
		}
		var out bytes.Buffer
		w, err := NewWriter(&out, h, func() time.Time { return time.Unix(0, 0) })
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got {
			r := store.Record{Key: e.Key, Value: e.Value, Members: e.Members}
			if !e.Expires.IsZero() {
				r.TTL = max(e.Expires.Sub(time.Unix(0, 0)), 1)
			}
			if err := w.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		var again []Entry
		_, sum2, err := Read(&out, func(Header) error { return nil }, func(e Entry) error { again = append(again, e); return nil })
		if err != nil || sum2 != sum || len(again) != len(got) {
			t.Fatalf("rewritten file: %v, %+v vs %+v", err, sum2, sum)
		}
		for i := range got {
			if got[i].Key != again[i].Key || !bytes.Equal(got[i].Value, again[i].Value) || strings.Join(got[i].Members, "\x00") != strings.Join(again[i].Members, "\x00") {
				t.Fatalf("entry %d changed: %+v vs %+v", i, got[i], again[i])
			}
		}
	})
}
