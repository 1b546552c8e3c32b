package nets

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Weights and checkpoints are stored in the safetensors layout
// (https://huggingface.co/docs/safetensors), so Python tools can read them:
//
//	8 bytes   little-endian uint64 N, the header length
//	N bytes   JSON header: {"NAME": {"dtype": "F32", "shape": [...], "data_offsets": [BEGIN, END]}, ...,
//	          "__metadata__": {"key": "string value", ...}}
//	rest      the tensors' little-endian float32 values; offsets count from the end of the header
//
// Model tensors are named after the graph: parameters by ParamSpec.Name
// ("cell0.pre0.conv.0" is the weight of that conv), running statistics by
// BufferSpec.Name, and in checkpoints momentum buffers as "momentum/" + the
// parameter name.

// NamedTensor is one float32 tensor of a weights file.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

type stEntry struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets [2]int `json:"data_offsets"`
}

// WriteSafetensors writes tensors and string metadata to path atomically:
// it writes a temporary file in the same folder, syncs it and renames it, so
// a crash leaves either the old file or the new one.
func WriteSafetensors(path string, tensors []NamedTensor, meta map[string]string) error {
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	off := 0
	for _, t := range tensors {
		n := 4 * len(t.Data)
		header[t.Name] = stEntry{"F32", t.Shape, [2]int{off, off + n}}
		off += n
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("nets: encode weights header: %w", err)
	}
	for len(hj)%8 != 0 { // align the data, as the reference writer does
		hj = append(hj, ' ')
	}
	buf := make([]byte, 8+len(hj)+off)
	binary.LittleEndian.PutUint64(buf, uint64(len(hj)))
	copy(buf[8:], hj)
	p := 8 + len(hj)
	for _, t := range tensors {
		for _, v := range t.Data {
			binary.LittleEndian.PutUint32(buf[p:], math.Float32bits(v))
			p += 4
		}
	}
	return WriteFileAtomic(path, buf)
}

// WriteFileAtomic replaces path with data so that a crash at any moment
// leaves either the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("nets: write %s: %w", path, err)
	}
	tmp := f.Name()
	// CreateTemp makes the file private (0600); results are for sharing.
	err = f.Chmod(0o644)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("nets: write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ErrWeightsFormat is wrapped by every error about a malformed weights file.
var ErrWeightsFormat = errors.New("nets: not a valid safetensors weights file")

// ReadSafetensors reads a file written by WriteSafetensors (any safetensors
// file whose tensors are all F32).
func ReadSafetensors(path string) (map[string]NamedTensor, map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("nets: read weights: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrWeightsFormat, path, fmt.Sprintf(format, args...))
	}
	if len(raw) < 8 {
		return nil, nil, bad("file is %d bytes, shorter than the 8-byte header length", len(raw))
	}
	hl := binary.LittleEndian.Uint64(raw)
	if hl > uint64(len(raw)-8) {
		return nil, nil, bad("header length %d exceeds the file (%d bytes): truncated?", hl, len(raw))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+hl], &header); err != nil {
		return nil, nil, bad("header is not JSON: %v", err)
	}
	body := raw[8+hl:]
	meta := map[string]string{}
	tensors := map[string]NamedTensor{}
	for name, msg := range header {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, bad("metadata: %v", err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, bad("tensor %q: %v", name, err)
		}
		if e.DType != "F32" {
			return nil, nil, bad("tensor %q has dtype %s, only F32 is supported", name, e.DType)
		}
		n := 1
		for _, d := range e.Shape {
			if d < 0 {
				return nil, nil, bad("tensor %q has negative dimension", name)
			}
			n *= d
		}
		b, end := e.Offsets[0], e.Offsets[1]
		if b < 0 || end > len(body) || end-b != 4*n {
			return nil, nil, bad("tensor %q: offsets [%d,%d] do not fit shape %v in %d data bytes (truncated?)", name, b, end, e.Shape, len(body))
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[b+4*i:]))
		}
		tensors[name] = NamedTensor{name, e.Shape, v}
	}
	return tensors, meta, nil
}

// Tensors lists the model's parameters and running statistics, and with
// momentum also the optimizer's momentum buffers.
func (m *Model) Tensors(momentum bool) []NamedTensor {
	var ts []NamedTensor
	for i, p := range m.G.Params {
		ts = append(ts, NamedTensor{p.Name, p.Shape, m.Params[i]})
	}
	for i, b := range m.G.Buffers {
		ts = append(ts, NamedTensor{b.Name, []int{b.Size}, m.Buffers[i]})
	}
	if momentum {
		for i, p := range m.G.Params {
			ts = append(ts, NamedTensor{"momentum/" + p.Name, p.Shape, m.Moms[i]})
		}
	}
	return ts
}

// LoadTensors copies tensors into the model by name. Every parameter and
// buffer must be present with its exact size; momentum buffers are loaded
// when present (and required when needMomentum).
func (m *Model) LoadTensors(ts map[string]NamedTensor, needMomentum bool, source string) error {
	var errs []error
	load := func(name string, dst []float32, required bool) {
		t, ok := ts[name]
		switch {
		case !ok && required:
			errs = append(errs, fmt.Errorf("nets: %s: tensor %q missing", source, name))
		case ok && len(t.Data) != len(dst):
			errs = append(errs, fmt.Errorf("nets: %s: tensor %q has %d values, the network needs %d (different architecture?)", source, name, len(t.Data), len(dst)))
		case ok:
			copy(dst, t.Data)
		}
	}
	for i, p := range m.G.Params {
		load(p.Name, m.Params[i], true)
		load("momentum/"+p.Name, m.Moms[i], needMomentum)
	}
	for i, b := range m.G.Buffers {
		load(b.Name, m.Buffers[i], true)
	}
	return errors.Join(errs...)
}

// SaveCheckpoint writes the trainer's whole state (weights, momentum,
// running statistics, epoch, step and loss curve) plus the caller's
// metadata to path, atomically.
func (t *Trainer) SaveCheckpoint(path string, meta map[string]string) error {
	md := map[string]string{}
	for k, v := range meta {
		md[k] = v
	}
	losses, _ := json.Marshal(t.Losses)
	md["epoch"], md["step"], md["losses"] = strconv.Itoa(t.Epoch), strconv.Itoa(t.Step), string(losses)
	return WriteSafetensors(path, t.M.Tensors(true), md)
}

// LoadCheckpoint restores a trainer from SaveCheckpoint's file and returns
// the metadata.
func (t *Trainer) LoadCheckpoint(path string) (map[string]string, error) {
	ts, md, err := ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	if err := t.M.LoadTensors(ts, true, path); err != nil {
		return nil, err
	}
	ep, err1 := strconv.Atoi(md["epoch"])
	st, err2 := strconv.Atoi(md["step"])
	var losses []float64
	err3 := json.Unmarshal([]byte(md["losses"]), &losses)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("%w: %s: bad checkpoint metadata: %v", ErrWeightsFormat, path, err)
	}
	t.Epoch, t.Step, t.Losses = ep, st, losses
	return md, nil
}

// sortedNames is used by tests and tools that list a file's tensors.
func sortedNames(ts map[string]NamedTensor) []string {
	names := make([]string, 0, len(ts))
	for n := range ts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
