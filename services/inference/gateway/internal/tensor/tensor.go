// Package tensor holds the gateway's view of a beamops.common.v1.Tensor on the Predict path
// (name, DataType number, shape, raw little-endian bytes that alias the request or Triton's
// answer: never copied) and the DataType tables: numpy names and sizes (as the SDK's
// beamops.tensors), Triton's datatype strings.
package tensor

import (
	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
)

// Tensor is one tensor: Dtype is a beamops.common.v1.DataType number.
type Tensor struct {
	Name  string
	Dtype int32
	Shape []int64
	Data  []byte
}

// Proto is the tensor as a beamops.common.v1.Tensor (sharing Shape and Data).
func (t *Tensor) Proto() *commonv1.Tensor {
	return &commonv1.Tensor{Name: t.Name, Dtype: commonv1.DataType(t.Dtype), Shape: t.Shape, RawData: t.Data}
}

// DataType numbers (beamops.common.v1.DataType).
const (
	Unspecified = int32(commonv1.DataType_DATA_TYPE_UNSPECIFIED)
	Bool        = int32(commonv1.DataType_DATA_TYPE_BOOL)
	Int8        = int32(commonv1.DataType_DATA_TYPE_INT8)
	Int16       = int32(commonv1.DataType_DATA_TYPE_INT16)
	Int32       = int32(commonv1.DataType_DATA_TYPE_INT32)
	Int64       = int32(commonv1.DataType_DATA_TYPE_INT64)
	Uint8       = int32(commonv1.DataType_DATA_TYPE_UINT8)
	Uint16      = int32(commonv1.DataType_DATA_TYPE_UINT16)
	Uint32      = int32(commonv1.DataType_DATA_TYPE_UINT32)
	Uint64      = int32(commonv1.DataType_DATA_TYPE_UINT64)
	Float16     = int32(commonv1.DataType_DATA_TYPE_FLOAT16)
	Float32     = int32(commonv1.DataType_DATA_TYPE_FLOAT32)
	Float64     = int32(commonv1.DataType_DATA_TYPE_FLOAT64)
	Bytes       = int32(commonv1.DataType_DATA_TYPE_BYTES)
)

type numeric struct {
	itemSize int64
	numpy    string // numpy's dtype.name
}

// numerics is DTYPES of beamops/tensors.py: the dtypes a tensor may have on Predict (BYTES is
// not one of them).
var numerics = [...]numeric{
	Bool:    {1, "bool"},
	Int8:    {1, "int8"},
	Int16:   {2, "int16"},
	Int32:   {4, "int32"},
	Int64:   {8, "int64"},
	Uint8:   {1, "uint8"},
	Uint16:  {2, "uint16"},
	Uint32:  {4, "uint32"},
	Uint64:  {8, "uint64"},
	Float16: {2, "float16"},
	Float32: {4, "float32"},
	Float64: {8, "float64"},
}

// Numeric says whether dtype is in DTYPES, with its item size and numpy name.
func Numeric(dtype int32) (itemSize int64, numpyName string, ok bool) {
	if dtype <= Unspecified || int(dtype) >= len(numerics) {
		return 0, "", false
	}
	n := numerics[dtype]
	return n.itemSize, n.numpy, true
}

// Name is validation.dtype_name: the enum name without DATA_TYPE_, or "unknown (N)".
func Name(dtype int32) string {
	if name, ok := commonv1.DataType_name[dtype]; ok {
		return name[len("DATA_TYPE_"):]
	}
	return "unknown (" + itoa(int64(dtype)) + ")"
}

func itoa(v int64) string {
	var buf [24]byte
	i := len(buf)
	neg := v < 0
	u := uint64(v)
	if neg {
		u = uint64(-v)
	}
	for {
		i--
		buf[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

// wireTypes: DataType -> Triton's datatype string.
var wireTypes = [...]string{
	Bool: "BOOL", Int8: "INT8", Int16: "INT16", Int32: "INT32", Int64: "INT64",
	Uint8: "UINT8", Uint16: "UINT16", Uint32: "UINT32", Uint64: "UINT64",
	Float16: "FP16", Float32: "FP32", Float64: "FP64", Bytes: "BYTES",
}

// WireType is Triton's datatype string for dtype ("" when there is none).
func WireType(dtype int32) string {
	if dtype < 0 || int(dtype) >= len(wireTypes) {
		return ""
	}
	return wireTypes[dtype]
}

// FromWire is the DataType of Triton's datatype string (ok false when there is none).
func FromWire(wire string) (int32, bool) {
	switch wire {
	case "BOOL":
		return Bool, true
	case "INT8":
		return Int8, true
	case "INT16":
		return Int16, true
	case "INT32":
		return Int32, true
	case "INT64":
		return Int64, true
	case "UINT8":
		return Uint8, true
	case "UINT16":
		return Uint16, true
	case "UINT32":
		return Uint32, true
	case "UINT64":
		return Uint64, true
	case "FP16":
		return Float16, true
	case "FP32":
		return Float32, true
	case "FP64":
		return Float64, true
	case "BYTES":
		return Bytes, true
	}
	return 0, false
}
