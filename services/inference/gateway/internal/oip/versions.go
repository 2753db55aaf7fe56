package oip

import (
	"strconv"
	"strings"
)

// versionScale: a parameters version "MAJOR.MINOR" is the integer MAJOR*versionScale+MINOR on
// this protocol ("1.2" is "1000002"), because Triton's clients take versions for integers
// (perf_analyzer parses ModelStatistics versions with stoll). Stable: the same version always
// has the same integer, and the integer gives the version back.
const versionScale = 1_000_000

// IntegerVersion is the integer form of a parameters version ("" when it has none).
func IntegerVersion(version string) string {
	major, minor, ok := strings.Cut(version, ".")
	if !ok {
		return ""
	}
	a, err1 := strconv.ParseUint(major, 10, 31)
	b, err2 := strconv.ParseUint(minor, 10, 31)
	if err1 != nil || err2 != nil || b >= versionScale {
		return ""
	}
	return strconv.FormatUint(a*versionScale+b, 10)
}

// ParametersVersion is the parameters version an integer form names ("" when v is not one).
func ParametersVersion(v string) string {
	if v == "" || strings.TrimLeft(v, "0123456789") != "" {
		return ""
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return ""
	}
	return strconv.FormatUint(n/versionScale, 10) + "." + strconv.FormatUint(n%versionScale, 10)
}
