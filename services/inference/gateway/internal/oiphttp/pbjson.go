package oiphttp

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"sort"
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// appendMessage writes m as protojson does with UseProtoNames (fields in number order, enums by
// name, bytes in base64, NaN and infinities as strings), except that 64-bit integers are JSON
// numbers, not strings: Triton's HTTP front writes configurations and statistics so. With all,
// unset scalar, repeated and map fields are written too (zero, [] and {}), as Triton writes
// statistics; unset messages and oneof members never are. (The Triton messages use no
// well-known types.)
func appendMessage(b []byte, m protoreflect.Message, all bool) []byte {
	b = append(b, '{')
	fields := m.Descriptor().Fields()
	first := true
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			message := fd.Message() != nil && !fd.IsList() && !fd.IsMap()
			if !all || message || fd.ContainingOneof() != nil {
				continue
			}
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, string(fd.Name()))
		b = append(b, ':')
		b = appendField(b, fd, m.Get(fd), all)
	}
	return append(b, '}')
}

func appendField(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value, all bool) []byte {
	switch {
	case fd.IsList():
		list := v.List()
		b = append(b, '[')
		for i := 0; i < list.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSingular(b, fd, list.Get(i), all)
		}
		return append(b, ']')
	case fd.IsMap():
		m := v.Map()
		keys := make([]protoreflect.MapKey, 0, m.Len())
		m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k.String())
			b = append(b, ':')
			b = appendSingular(b, fd.MapValue(), m.Get(k), all)
		}
		return append(b, '}')
	}
	return appendSingular(b, fd, v, all)
}

func appendSingular(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value, all bool) []byte {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.AppendInt(b, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.AppendUint(b, v.Uint(), 10)
	case protoreflect.FloatKind:
		return appendFloat(b, v.Float(), 32)
	case protoreflect.DoubleKind:
		return appendFloat(b, v.Float(), 64)
	case protoreflect.StringKind:
		return appendString(b, v.String())
	case protoreflect.BytesKind:
		return appendString(b, base64.StdEncoding.EncodeToString(v.Bytes()))
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return appendString(b, string(ev.Name()))
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendMessage(b, v.Message(), all)
	}
	return append(b, "null"...)
}

func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // never fails for a string (invalid UTF-8 becomes U+FFFD)
	return append(b, q...)
}
