package pyrepr

import "testing"

func TestStrMatchesPythonRepr(t *testing.T) {
	// Expected values are what CPython 3.11 prints for repr(s).
	cases := map[string]string{
		"x":            `'x'`,
		"":             `''`,
		"it's":         `"it's"`,
		`say "hi"`:     `'say "hi"'`,
		`it's "x"`:     `'it\'s "x"'`,
		`a\b`:          `'a\\b'`,
		"tab\there":    `'tab\there'`,
		"nl\ncr\r":     `'nl\ncr\r'`,
		"\x00\x1f\x7f": `'\x00\x1f\x7f'`,
		"é":            `'é'`,
		"\u00a0":       `'\xa0'`,
		"\u200b":       `'\u200b'`,
		"\U000e0001":   `'\U000e0001'`,
		"日本":           `'日本'`,
		"x y":          `'x y'`,
	}
	for in, want := range cases {
		if got := Str(in); got != want {
			t.Errorf("Str(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestInts(t *testing.T) {
	if got := Ints([]int64{2, -1, 3}); got != "[2, -1, 3]" {
		t.Fatal(got)
	}
	if got := Ints(nil); got != "[]" {
		t.Fatal(got)
	}
	if got := JoinStrs([]string{"x", "y"}); got != "'x', 'y'" {
		t.Fatal(got)
	}
}

func TestStrip(t *testing.T) {
	if got := Strip(" \x1c\tabc \n"); got != "abc" {
		t.Fatalf("%q", got)
	}
}
