package wire

import (
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// InlineLimit: tensor data up to this size is copied into the header bytes instead of being a
// piece of its own.
const InlineLimit = 4096

// Pieces builds an encoded message as a list of buffers: header bytes, with large tensor data
// in between as pieces of their own (aliasing the tensor's memory, never copied).
type Pieces struct {
	out mem.BufferSlice
	cur []byte
}

// NewPieces starts a message with room for headerBytes of header bytes.
func NewPieces(headerBytes int) *Pieces {
	return &Pieces{cur: make([]byte, 0, headerBytes)}
}

// Bytes appends b to the header bytes (copied).
func (p *Pieces) Bytes(b []byte) { p.cur = append(p.cur, b...) }

// Data appends b: inlined when small, else a piece of its own.
func (p *Pieces) Data(b []byte) {
	if len(b) <= InlineLimit {
		p.cur = append(p.cur, b...)
		return
	}
	if len(p.cur) > 0 {
		p.out = append(p.out, mem.SliceBuffer(p.cur))
		p.cur = p.cur[len(p.cur):] // later appends never touch the bytes handed out
	}
	p.out = append(p.out, mem.SliceBuffer(b))
}

// Tag, Varint, String, BytesField append protobuf fields to the header bytes.
func (p *Pieces) Tag(num protowire.Number, typ protowire.Type) {
	p.cur = protowire.AppendTag(p.cur, num, typ)
}
func (p *Pieces) Varint(v uint64) { p.cur = protowire.AppendVarint(p.cur, v) }
func (p *Pieces) String(num protowire.Number, s string) {
	p.cur = protowire.AppendTag(p.cur, num, protowire.BytesType)
	p.cur = protowire.AppendString(p.cur, s)
}

// Done is the message.
func (p *Pieces) Done() mem.BufferSlice {
	if len(p.cur) > 0 {
		p.out = append(p.out, mem.SliceBuffer(p.cur))
		p.cur = nil
	}
	return p.out
}

// Len is the number of bytes of the message so far.
func (p *Pieces) Len() int {
	n := len(p.cur)
	for _, b := range p.out {
		n += b.Len()
	}
	return n
}
