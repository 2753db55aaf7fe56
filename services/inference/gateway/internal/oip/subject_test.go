package oip

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

func oid(s ...int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier(s) }

func TestSubjectIsWhatOpenSSLPrints(t *testing.T) {
	dc, email := oid(0, 9, 2342, 19200300, 100, 1, 25), oid(1, 2, 840, 113549, 1, 9, 1)
	ou, cn, o := oid(2, 5, 4, 11), oid(2, 5, 4, 3), oid(2, 5, 4, 10)
	rdns := pkix.RDNSequence{
		{{Type: dc, Value: "ch"}}, {{Type: dc, Value: "cern"}}, {{Type: ou, Value: "Organic Units"}},
		{{Type: ou, Value: "Users"}}, {{Type: cn, Value: "cmshlt"}}, {{Type: email, Value: "a@cern.ch"}},
	}
	raw, err := asn1.Marshal(rdns)
	if err != nil {
		t.Fatal(err)
	}
	// As `openssl x509 -noout -subject -nameopt RFC2253` prints a CERN grid certificate.
	want := "emailAddress=a@cern.ch,CN=cmshlt,OU=Users,OU=Organic Units,DC=cern,DC=ch"
	if got := Subject(&x509.Certificate{RawSubject: raw}); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	// A multi-valued RDN keeps its encoded (DER SET) order, as OpenSSL prints it.
	raw, _ = asn1.Marshal(pkix.RDNSequence{{{Type: o, Value: "A, B"}}, {{Type: cn, Value: "#x "}, {Type: ou, Value: "y"}}})
	if got := Subject(&x509.Certificate{RawSubject: raw}); got != `OU=y+CN=\#x\ ,O=A\, B` {
		t.Errorf("escaping: %s", got)
	}
}
