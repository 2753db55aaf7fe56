package oip

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"strings"
)

// shortNames are the attribute names OpenSSL writes with `-nameopt RFC2253` (Go's
// pkix.Name.String writes DC, emailAddress and UID as dotted numbers, and merges repeated OUs).
var shortNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L",
	"2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.12": "title",
	"2.5.4.42": "GN", "2.5.4.17": "postalCode", "0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1": "UID", "1.2.840.113549.1.9.1": "emailAddress",
}

// Subject is a certificate's subject as `openssl x509 -noout -subject -nameopt RFC2253` prints
// it: the RDNs of the certificate in reverse order, each attribute by its short name, the
// values escaped as RFC 2253 says; an attribute without a short name as OID=#hex of its DER.
func Subject(cert *x509.Certificate) string {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(cert.RawSubject, &rdns); err != nil || len(rest) > 0 {
		return cert.Subject.String()
	}
	parts := make([]string, 0, len(rdns))
	for i := len(rdns) - 1; i >= 0; i-- {
		attrs := make([]string, len(rdns[i]))
		for j, a := range rdns[i] {
			attrs[j] = attribute(a)
		}
		parts = append(parts, strings.Join(attrs, "+"))
	}
	return strings.Join(parts, ",")
}

func attribute(a pkix.AttributeTypeAndValue) string {
	oid := a.Type.String()
	value, ok := a.Value.(string)
	name, known := shortNames[oid]
	if !ok || !known {
		der, err := asn1.Marshal(a.Value)
		if err != nil {
			return oid + "=#"
		}
		return oid + "=#" + hex.EncodeToString(der)
	}
	return name + "=" + escape(value)
}

// escape is RFC 2253's: , + " \ < > ; anywhere, # first, and a space first or last.
func escape(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case strings.ContainsRune(",+\"\\<>;", r), r == '#' && i == 0, r == ' ' && (i == 0 || i == len(v)-1):
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
