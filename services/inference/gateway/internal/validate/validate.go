// Package validate holds the data plane's checks of a request against a deployment's
// signature: each input's dtype, shape and bytes, the batch limit, the outputs asked for, and
// how Triton's outputs are shaped back. Every refusal is an INVALID_ARGUMENT naming the tensor
// (ErrorInfo metadata "tensor", a BadRequest field), in words a physicist understands.
package validate

import (
	"strconv"
	"strings"

	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// MaxElements is check_tensor's default max_elements (2**31).
const MaxElements = int64(1) << 31

// Spec is one tensor of a signature (shape: -1 for a variable dimension).
type Spec struct {
	Name  string
	Dtype int32
	Shape []int64
}

// Checker is InputChecker: the checks of one signature and batch limit, prepared once per
// route.
type Checker struct {
	order    []string        // spec names in dict order (first appearance)
	specs    map[string]Spec // the last spec of each name (a dict built from the list)
	maxBatch int64
	expected string // the quoted names, comma separated
}

// NewChecker prepares the checks of inputs with Triton's max_batch_size.
func NewChecker(inputs []Spec, maxBatchSize int64) *Checker {
	c := &Checker{specs: make(map[string]Spec, len(inputs)), maxBatch: maxBatchSize}
	for _, s := range inputs {
		if _, seen := c.specs[s.Name]; !seen {
			c.order = append(c.order, s.Name)
		}
		c.specs[s.Name] = s
	}
	c.expected = quoted(c.order)
	return c
}

// MaxBatchSize is the batch limit the checker applies (0: the model does not batch).
func (c *Checker) MaxBatchSize() int64 { return c.maxBatch }

// Check is InputChecker.check: the inputs as Triton wants them (the request's bytes; one value
// per sample shaped [batch, 1]) appended to out, and the batch size (0 when the model does not
// batch); an INVALID_ARGUMENT naming the tensor otherwise. method names the RPC for the
// (never expected) internal error of a scalar input to a batching model.
func (c *Checker) Check(tensors []tensor.Tensor, out []tensor.Tensor, method, requestID string) ([]tensor.Tensor, int64, *rpcstatus.Error) {
	out = out[:0]
	var batchName string
	var batchRows int64 = -1
	for i := range tensors {
		t := &tensors[i]
		name := t.Name
		spec, ok := c.specs[name]
		if !ok {
			return nil, 0, rpcstatus.InvalidArgument(
				"input "+strconv.Quote(name)+" is not in the model's signature; expected "+c.expected,
				"inputs["+strconv.Itoa(i)+"].name", name)
		}
		for j := range out {
			if out[j].Name == name {
				return nil, 0, rpcstatus.InvalidArgument("input "+strconv.Quote(name)+" is given twice",
					"inputs["+strconv.Itoa(i)+"].name", name)
			}
		}
		if t.Dtype != spec.Dtype {
			return nil, 0, rpcstatus.InvalidArgument(
				"input "+strconv.Quote(name)+": dtype "+tensor.Name(t.Dtype)+", the model expects "+tensor.Name(spec.Dtype),
				"inputs["+strconv.Itoa(i)+"].dtype", name)
		}
		if msg := CheckTensor(t, MaxElements); msg != "" {
			return nil, 0, rpcstatus.InvalidArgument("input "+msg, "inputs["+strconv.Itoa(i)+"]", name)
		}
		shape := t.Shape
		if !shapeFits(shape, spec.Shape) {
			return nil, 0, rpcstatus.InvalidArgument(
				"input "+strconv.Quote(name)+": shape "+ints(shape)+", the model expects "+SpecShape(spec.Shape),
				"inputs["+strconv.Itoa(i)+"].shape", name)
		}
		if c.maxBatch > 0 {
			if len(shape) == 0 { // never: a batching model has no scalar inputs
				return nil, 0, rpcstatus.Internal(method, requestID)
			}
			rows := shape[0]
			field := "inputs[" + strconv.Itoa(i) + "].shape"
			if rows == 0 {
				return nil, 0, rpcstatus.InvalidArgument("input "+strconv.Quote(name)+" has no rows", field, name)
			}
			if rows > c.maxBatch {
				return nil, 0, rpcstatus.InvalidArgument(
					"input "+strconv.Quote(name)+" has "+strconv.FormatInt(rows, 10)+" rows, more than this deployment's "+
						"max_batch_size "+strconv.FormatInt(c.maxBatch, 10)+"; split the request", field, name)
			}
			if batchRows >= 0 && batchRows != rows {
				return nil, 0, rpcstatus.InvalidArgument(
					"input "+strconv.Quote(name)+" has "+strconv.FormatInt(rows, 10)+" rows but input "+
						strconv.Quote(batchName)+" has "+strconv.FormatInt(batchRows, 10), field, name)
			}
			batchName, batchRows = name, rows
			if len(shape) == 1 { // Triton wants [batch, 1] for one value per sample
				shape = []int64{rows, 1}
			}
		}
		out = append(out, tensor.Tensor{Name: name, Dtype: t.Dtype, Shape: shape, Data: t.Data})
	}
	if len(out) != len(c.order) {
		for _, n := range c.order {
			if !has(out, n) {
				return nil, 0, rpcstatus.InvalidArgument("input "+strconv.Quote(n)+" is missing", "inputs", n)
			}
		}
	}
	if batchRows < 0 {
		batchRows = 0
	}
	return out, batchRows, nil
}

func has(ts []tensor.Tensor, name string) bool {
	for i := range ts {
		if ts[i].Name == name {
			return true
		}
	}
	return false
}

func shapeFits(shape, want []int64) bool {
	if len(shape) != len(want) {
		return false
	}
	for i, w := range want {
		if w != -1 && shape[i] != w {
			return false
		}
	}
	return true
}

// SpecShape is validation._shape: "[N, 4]".
func SpecShape(shape []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteString(", ")
		}
		if d == -1 {
			b.WriteByte('N')
		} else {
			b.WriteString(strconv.FormatInt(d, 10))
		}
	}
	b.WriteByte(']')
	return b.String()
}

// CheckTensor is "" when a tensor's dtype, shape and bytes agree, else what is wrong
// (`tensor "x": ...`).
func CheckTensor(t *tensor.Tensor, maxElements int64) string {
	name := t.Name
	if name == "" {
		name = "<unnamed>"
	}
	itemSize, numpyName, ok := tensor.Numeric(t.Dtype)
	if !ok {
		return "tensor " + strconv.Quote(name) + ": unsupported or missing dtype"
	}
	for _, d := range t.Shape {
		if d < 0 {
			return "tensor " + strconv.Quote(name) + ": negative dimension in shape " + ints(t.Shape)
		}
	}
	elements, tooMany := product(t.Shape, maxElements)
	if tooMany {
		return "tensor " + strconv.Quote(name) + ": shape " + ints(t.Shape) + " has too many elements"
	}
	expected := elements * itemSize
	if int64(len(t.Data)) != expected {
		return "tensor " + strconv.Quote(name) + ": shape " + ints(t.Shape) + " of " + numpyName + " needs " +
			strconv.FormatInt(expected, 10) + " bytes, got " + strconv.Itoa(len(t.Data))
	}
	return ""
}

// product is math.prod(shape) for non-negative dimensions, and whether it exceeds limit
// (computed without overflow: a zero dimension makes it 0 whatever the others are).
func product(shape []int64, limit int64) (int64, bool) {
	for _, d := range shape {
		if d == 0 {
			return 0, false
		}
	}
	p := int64(1)
	for _, d := range shape {
		if p > limit/d {
			return 0, true
		}
		p *= d
	}
	return p, p > limit
}

// Outputs is what a route needs of its signature outputs: check_outputs and output_ranks.
type Outputs struct {
	known []string        // signature output names, in order (as a list: duplicates kept)
	ranks map[string]int  // output_ranks
	has   map[string]bool // set of known
	list  string          // the quoted names, comma separated
}

// NewOutputs prepares the output checks of a signature's outputs.
func NewOutputs(outputs []Spec) *Outputs {
	o := &Outputs{ranks: make(map[string]int, len(outputs)), has: make(map[string]bool, len(outputs))}
	for _, s := range outputs {
		o.known = append(o.known, s.Name)
		o.ranks[s.Name] = len(s.Shape)
		o.has[s.Name] = true
	}
	o.list = quoted(o.known)
	return o
}

// All is every signature output, in order.
func (o *Outputs) All() []string { return o.known }

// Check is check_outputs: all outputs for no names; an INVALID_ARGUMENT for an unknown name;
// else the names without repeats, in order.
func (o *Outputs) Check(names []string) ([]string, *rpcstatus.Error) {
	if len(names) == 0 {
		return o.known, nil
	}
	dups := false
	for i, name := range names {
		if !o.has[name] {
			return nil, rpcstatus.InvalidArgument(
				"output "+strconv.Quote(name)+" is not in the model's signature; it has "+o.list,
				"output_names["+strconv.Itoa(i)+"]", name)
		}
		if !dups {
			for _, prev := range names[:i] {
				if prev == name {
					dups = true
					break
				}
			}
		}
	}
	if !dups {
		return names, nil
	}
	unique := make([]string, 0, len(names))
	for _, name := range names {
		seen := false
		for _, u := range unique {
			if u == name {
				seen = true
				break
			}
		}
		if !seen {
			unique = append(unique, name)
		}
	}
	return unique, nil
}

// Rank is the signature rank of output name (ok false when it is not an output).
func (o *Outputs) Rank(name string) (int, bool) {
	r, ok := o.ranks[name]
	return r, ok
}

// ShapeOutput is shape_output: a rank-1 output ([batch, 1] from Triton) gets its signature
// rank back. It changes t in place.
func (o *Outputs) ShapeOutput(t *tensor.Tensor) {
	if len(t.Shape) == 2 && t.Shape[1] == 1 {
		if r, ok := o.ranks[t.Name]; ok && r == 1 {
			t.Shape = t.Shape[:1:1]
		}
	}
}

// shownDims is how many dimensions of a shape a message shows.
const shownDims = 16

// ints writes a shape as [2, 3]; one of more than shownDims dimensions as
// [1, 2, ..., 16, ... (1000 dimensions)].
func ints(values []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range values {
		if i == shownDims {
			b.WriteString(", ... (" + strconv.Itoa(len(values)) + " dimensions)")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(v, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// quoted writes names as "a", "b".
func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
