package validate

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// testdata/cases.json holds, for each case, the signature, the request and the answer: the
// refusal (message, field, metadata) or what is sent to Triton.
type checkCase struct {
	Name      string `json:"name"`
	Signature struct {
		Inputs  [][3]json.RawMessage `json:"inputs"`
		Outputs [][3]json.RawMessage `json:"outputs"`
	} `json:"signature"`
	MaxBatchSize int64 `json:"max_batch_size"`
	Tensors      []struct {
		Name   string  `json:"name"`
		Dtype  int32   `json:"dtype"`
		Shape  []int64 `json:"shape"`
		NBytes int     `json:"nbytes"`
	} `json:"tensors"`
	OutputNames []string `json:"output_names"`
	Error       *struct {
		Message  string            `json:"message"`
		Field    string            `json:"field"`
		Metadata map[string]string `json:"metadata"`
	} `json:"error"`
	Checked []struct {
		Name  string  `json:"name"`
		Shape []int64 `json:"shape"`
	} `json:"checked"`
	Rows    int64    `json:"rows"`
	Outputs []string `json:"outputs"`
}

type checkCases struct {
	Check       []checkCase `json:"check"`
	ShapeOutput []struct {
		Name  string  `json:"name"`
		Shape []int64 `json:"shape"`
		Want  []int64 `json:"want"`
	} `json:"shape_output"`
}

func loadCases(t *testing.T) checkCases {
	t.Helper()
	raw, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var c checkCases
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func specsOf(t *testing.T, items [][3]json.RawMessage) []Spec {
	t.Helper()
	out := make([]Spec, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it[0], &out[i].Name); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(it[1], &out[i].Dtype); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(it[2], &out[i].Shape); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestChecksAnswerEachCase(t *testing.T) {
	cases := loadCases(t)
	if len(cases.Check) < 30 {
		t.Fatalf("only %d cases", len(cases.Check))
	}
	for _, c := range cases.Check {
		t.Run(c.Name, func(t *testing.T) {
			checker := NewChecker(specsOf(t, c.Signature.Inputs), c.MaxBatchSize)
			outputs := NewOutputs(specsOf(t, c.Signature.Outputs))
			tensors := make([]tensor.Tensor, len(c.Tensors))
			for i, x := range c.Tensors {
				tensors[i] = tensor.Tensor{Name: x.Name, Dtype: x.Dtype, Shape: x.Shape, Data: make([]byte, x.NBytes)}
			}
			checked, rows, e := checker.Check(tensors, nil, "Predict", "rid")
			var names []string
			if e == nil {
				names, e = outputs.Check(c.OutputNames)
			}
			if c.Error != nil {
				if e == nil {
					t.Fatalf("no error, want %q", c.Error.Message)
				}
				if e.Code != codes.InvalidArgument || e.Reason != "INVALID_ARGUMENT" {
					t.Errorf("code %v reason %s", e.Code, e.Reason)
				}
				if e.Message != c.Error.Message {
					t.Errorf("message\n got %q\nwant %q", e.Message, c.Error.Message)
				}
				if e.Field != c.Error.Field {
					t.Errorf("field %q, want %q", e.Field, c.Error.Field)
				}
				if !reflect.DeepEqual(e.Metadata, c.Error.Metadata) {
					t.Errorf("metadata %v, want %v", e.Metadata, c.Error.Metadata)
				}
				return
			}
			if e != nil {
				t.Fatalf("error %q, want it accepted", e.Message)
			}
			if rows != c.Rows {
				t.Errorf("rows %d, want %d", rows, c.Rows)
			}
			if len(checked) != len(c.Checked) {
				t.Fatalf("%d checked, want %d", len(checked), len(c.Checked))
			}
			for i, w := range c.Checked {
				if checked[i].Name != w.Name || !reflect.DeepEqual(checked[i].Shape, w.Shape) {
					t.Errorf("checked[%d] = %s %v, want %s %v", i, checked[i].Name, checked[i].Shape, w.Name, w.Shape)
				}
				if len(checked[i].Data) != len(tensors[i].Data) || (len(checked[i].Data) > 0 && &checked[i].Data[0] != &tensors[i].Data[0]) {
					t.Errorf("checked[%d] does not share the request's bytes", i)
				}
			}
			if !reflect.DeepEqual(names, c.Outputs) {
				t.Errorf("outputs %v, want %v", names, c.Outputs)
			}
		})
	}
}

func TestShapeOutput(t *testing.T) {
	cases := loadCases(t)
	outputs := NewOutputs([]Spec{{Name: "label", Shape: []int64{-1}}, {Name: "p", Shape: []int64{-1, 1}},
		{Name: "q", Shape: []int64{-1, 1, 1}}})
	for _, c := range cases.ShapeOutput {
		tt := tensor.Tensor{Name: c.Name, Shape: append([]int64(nil), c.Shape...)}
		outputs.ShapeOutput(&tt)
		if !reflect.DeepEqual(tt.Shape, c.Want) {
			t.Errorf("%s %v -> %v, want %v", c.Name, c.Shape, tt.Shape, c.Want)
		}
	}
}

func TestScalarInputOfABatchingModelIsAnInternalError(t *testing.T) {
	// A batching model never has a scalar input: a signature that says so is a bug, not the caller's.
	c := NewChecker([]Spec{{Name: "x", Dtype: tensor.Float32, Shape: []int64{}}}, 8)
	_, _, e := c.Check([]tensor.Tensor{{Name: "x", Dtype: tensor.Float32, Data: make([]byte, 4)}}, nil, "Predict", "abc")
	if e == nil || e.Code != codes.Internal ||
		e.Message != "internal error in Predict; an administrator can find it in the log under request id abc" {
		t.Fatalf("%+v", e)
	}
}

func TestCheckTensor(t *testing.T) {
	// tests/unit/test_tensors.py: test_disagreeing_tensors_are_refused_with_the_reason
	for _, c := range []struct {
		shape  []int64
		nbytes int
		want   string
	}{
		{[]int64{2, 3}, 20, "tensor \"x\": shape [2, 3] of float32 needs 24 bytes, got 20"},
		{[]int64{2, -1}, 0, "tensor \"x\": negative dimension in shape [2, -1]"},
		{[]int64{1 << 20, 1 << 20, 1 << 20}, 0, "tensor \"x\": shape [1048576, 1048576, 1048576] has too many elements"},
		{[]int64{1 << 31}, 0, "tensor \"x\": shape [2147483648] of float32 needs 8589934592 bytes, got 0"},
		{[]int64{1<<31 + 1}, 0, "tensor \"x\": shape [2147483649] has too many elements"},
		{[]int64{1 << 62, 1 << 62, 4}, 0, "tensor \"x\": shape [4611686018427387904, 4611686018427387904, 4] has too many elements"},
		{[]int64{2, 3}, 24, ""},
		{[]int64{}, 4, ""},
	} {
		got := CheckTensor(&tensor.Tensor{Name: "x", Dtype: tensor.Float32, Shape: c.shape, Data: make([]byte, c.nbytes)}, MaxElements)
		if got != c.want {
			t.Errorf("%v: %q, want %q", c.shape, got, c.want)
		}
	}
	// test_missing_dtype_and_unsupported_arrays_are_refused
	if got := CheckTensor(&tensor.Tensor{Name: "x", Shape: []int64{1}, Data: make([]byte, 4)}, MaxElements); got != "tensor \"x\": unsupported or missing dtype" {
		t.Error(got)
	}
	// Every dtype of DTYPES with its numpy name and size.
	for dtype, want := range map[int32]string{
		tensor.Bool: "bool", tensor.Int8: "int8", tensor.Int16: "int16", tensor.Int32: "int32", tensor.Int64: "int64",
		tensor.Uint8: "uint8", tensor.Uint16: "uint16", tensor.Uint32: "uint32", tensor.Uint64: "uint64",
		tensor.Float16: "float16", tensor.Float32: "float32", tensor.Float64: "float64",
	} {
		size, name, ok := tensor.Numeric(dtype)
		if !ok || name != want {
			t.Errorf("dtype %d: %s %v", dtype, name, ok)
		}
		if CheckTensor(&tensor.Tensor{Name: "x", Dtype: dtype, Shape: []int64{3}, Data: make([]byte, 3*size)}, MaxElements) != "" {
			t.Errorf("dtype %d refused", dtype)
		}
	}
}

func TestAThousandDimensionShapeMakesAShortMessage(t *testing.T) {
	shape := make([]int64, 1000)
	for i := range shape {
		shape[i] = 1
	}
	c := NewChecker([]Spec{{Name: "x", Dtype: 11, Shape: []int64{-1, 4}}}, 64)
	_, _, e := c.Check([]tensor.Tensor{{Name: "x", Dtype: 11, Shape: shape, Data: make([]byte, 4)}}, nil, "Predict", "r")
	if e == nil || e.Code != codes.InvalidArgument {
		t.Fatalf("%v", e)
	}
	if len(e.Message) > 300 || !strings.Contains(e.Message, "(1000 dimensions)") {
		t.Fatalf("message of %d bytes: %s", len(e.Message), e.Message)
	}
}
