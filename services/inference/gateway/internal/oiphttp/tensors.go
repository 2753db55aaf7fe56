package oiphttp

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
)

// itemSizes are the datatypes a tensor's "data" may carry, with their sizes in bytes.
var itemSizes = map[string]int{
	"BOOL": 1, "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8,
	"UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "FP32": 4, "FP64": 8,
}

// rawFromJSON is a tensor's JSON "data" (a flat or nested list of numbers, or of booleans for
// BOOL; the JSON is valid, the decoder checked it) as little-endian bytes of datatype.
func rawFromJSON(name, datatype string, data []byte) ([]byte, *httpError) {
	_, ok := itemSizes[datatype]
	switch {
	case datatype == "FP16":
		return nil, badRequest("input %q: FP16 data must come binary (the binary tensor data extension: parameters.binary_data_size)", name)
	case datatype == "BYTES":
		return nil, badRequest("input %q: BYTES tensors are not served (numeric types and BOOL are)", name)
	case !ok:
		return nil, badRequest("input %q: datatype %q is not one of Triton's numeric types or BOOL", name, datatype)
	}
	out := make([]byte, 0, len(data)/2) // about: a value takes at least 2 characters
	for i := 0; i < len(data); {
		if isSeparator(data[i]) {
			i++
			continue
		}
		j := i
		for j < len(data) && !isSeparator(data[j]) {
			j++
		}
		var e *httpError
		if out, e = appendValue(out, name, datatype, string(data[i:j])); e != nil {
			return nil, e
		}
		i = j
	}
	return out, nil
}

func isSeparator(c byte) bool {
	return c == '[' || c == ']' || c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// appendValue appends one JSON value of a tensor's data (a token without separators).
func appendValue(out []byte, name, datatype, tok string) ([]byte, *httpError) {
	switch tok[0] {
	case '"', '{', 'n':
		return nil, badRequest("input %q: data must be numbers (booleans for BOOL), in a list or nested lists", name)
	}
	if datatype == "BOOL" {
		switch tok {
		case "true":
			return append(out, 1), nil
		case "false":
			return append(out, 0), nil
		}
		return nil, badRequest("input %q: BOOL data must be true or false, not %s", name, tok)
	}
	if tok == "true" || tok == "false" {
		return nil, badRequest("input %q: %s data must be numbers, not %s", name, datatype, tok)
	}
	var err error
	switch datatype {
	case "INT8", "INT16", "INT32", "INT64":
		var v int64
		if v, err = strconv.ParseInt(tok, 10, 8*itemSizes[datatype]); err == nil {
			return appendUint(out, datatype, uint64(v)), nil
		}
	case "UINT8", "UINT16", "UINT32", "UINT64":
		var v uint64
		if v, err = strconv.ParseUint(tok, 10, 8*itemSizes[datatype]); err == nil {
			return appendUint(out, datatype, v), nil
		}
	case "FP32":
		var v float64
		if v, err = strconv.ParseFloat(tok, 32); err == nil {
			return binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(v))), nil
		}
	case "FP64":
		var v float64
		if v, err = strconv.ParseFloat(tok, 64); err == nil {
			return binary.LittleEndian.AppendUint64(out, math.Float64bits(v)), nil
		}
	}
	if errors.Is(err, strconv.ErrRange) {
		return nil, badRequest("input %q: %s is out of the range of %s", name, tok, datatype)
	}
	return nil, badRequest("input %q: %s is not a valid %s value", name, tok, datatype)
}

// appendUint appends the low bytes of v as datatype's width, little-endian.
func appendUint(out []byte, datatype string, v uint64) []byte {
	switch itemSizes[datatype] {
	case 1:
		return append(out, byte(v))
	case 2:
		return binary.LittleEndian.AppendUint16(out, uint16(v))
	case 4:
		return binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	return binary.LittleEndian.AppendUint64(out, v)
}

// appendJSONData appends raw (little-endian values of datatype) as a flat JSON list; ok false
// when JSON cannot carry it (FP16, BYTES or an unknown type, a NaN or infinity, or a length
// that is not a whole number of values): b is then returned as it came.
func appendJSONData(b []byte, datatype string, raw []byte) ([]byte, bool) {
	size, known := itemSizes[datatype]
	if !known || len(raw)%size != 0 {
		return b, false
	}
	start := len(b)
	b = append(b, '[')
	for i := 0; i < len(raw); i += size {
		if i > 0 {
			b = append(b, ',')
		}
		v := raw[i : i+size]
		switch datatype {
		case "BOOL":
			b = strconv.AppendBool(b, v[0] != 0)
		case "INT8":
			b = strconv.AppendInt(b, int64(int8(v[0])), 10)
		case "INT16":
			b = strconv.AppendInt(b, int64(int16(binary.LittleEndian.Uint16(v))), 10)
		case "INT32":
			b = strconv.AppendInt(b, int64(int32(binary.LittleEndian.Uint32(v))), 10)
		case "INT64":
			b = strconv.AppendInt(b, int64(binary.LittleEndian.Uint64(v)), 10)
		case "UINT8":
			b = strconv.AppendUint(b, uint64(v[0]), 10)
		case "UINT16":
			b = strconv.AppendUint(b, uint64(binary.LittleEndian.Uint16(v)), 10)
		case "UINT32":
			b = strconv.AppendUint(b, uint64(binary.LittleEndian.Uint32(v)), 10)
		case "UINT64":
			b = strconv.AppendUint(b, binary.LittleEndian.Uint64(v), 10)
		case "FP32":
			f := math.Float32frombits(binary.LittleEndian.Uint32(v))
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return b[:start], false
			}
			b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
		case "FP64":
			f := math.Float64frombits(binary.LittleEndian.Uint64(v))
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return b[:start], false
			}
			b = strconv.AppendFloat(b, f, 'g', -1, 64)
		}
	}
	return append(b, ']'), true
}
