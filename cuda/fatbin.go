package cuda

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// This file reads the parts of an nvcc fatbin that the real driver uses
// beyond loading it: which architectures it holds (for error messages) and
// each kernel's parameter sizes, so that Launch can reject arguments that do
// not match the kernel (as the emulator does from its registry) instead of
// letting the GPU read garbage. It is pure Go and needs no GPU.
//
// Layout (CUDA 11/12, as cuobjdump shows it): a fatbin is one or more
// containers, each a 16-byte header (magic 0xBA55ED50, version, header
// size, payload size) followed by entries; an entry is a header (kind 1 =
// PTX, 2 = ELF cubin; its own size; payload size; flags; SM version) and
// its payload. In a cubin, section ".nv.info.<kernel>" is a list of
// attributes, each a 4-byte head (format, attribute, 16-bit value or size)
// and, for sized values, that many bytes; an EIATTR_KPARAM_INFO attribute
// gives one parameter's ordinal, offset and size.

const (
	fatbinMagic        = 0xBA55ED50
	fatbinKindPTX      = 1
	fatbinKindELF      = 2
	fatbinCompressed   = 0x2000 // entry flag: payload compressed (we skip it)
	eifmtSVAL          = 0x04   // attribute format: sized value follows
	eiattrKParamInfo   = 0x17
	fatbinEntryMinHead = 40
)

// fatbinEntry is one image inside a fatbin.
type fatbinEntry struct {
	kind    int // fatbinKindPTX or fatbinKindELF
	arch    int // e.g. 80 for sm_80 / compute_80
	flags   uint64
	payload []byte
}

// fatbinEntries splits a fatbin into its images.
func fatbinEntries(fb []byte) ([]fatbinEntry, error) {
	var out []fatbinEntry
	le := binary.LittleEndian
	for off := 0; off < len(fb); {
		if len(fb)-off < 16 {
			// nvcc pads the file; trailing zeros are not a container.
			if bytes.Count(fb[off:], []byte{0}) == len(fb)-off {
				break
			}
			return nil, fmt.Errorf("cuda: fatbin: %d stray bytes at offset %d", len(fb)-off, off)
		}
		if m := le.Uint32(fb[off:]); m != fatbinMagic {
			if off > 0 && bytes.Count(fb[off:], []byte{0}) == len(fb)-off {
				break
			}
			return nil, fmt.Errorf("cuda: fatbin: bad magic %#x at offset %d (not an nvcc fatbin)", m, off)
		}
		head := int(le.Uint16(fb[off+6:]))
		size := le.Uint64(fb[off+8:])
		if head < 16 || uint64(len(fb)-off-head) < size {
			return nil, fmt.Errorf("cuda: fatbin: container at offset %d claims %d+%d bytes, file has %d", off, head, size, len(fb)-off)
		}
		body := fb[off+head : off+head+int(size)]
		for e := 0; e < len(body); {
			if len(body)-e < fatbinEntryMinHead {
				return nil, fmt.Errorf("cuda: fatbin: truncated entry header at offset %d", off+head+e)
			}
			kind := int(le.Uint16(body[e:]))
			ehead := int(le.Uint32(body[e+4:]))
			esize := le.Uint64(body[e+8:])
			if ehead < fatbinEntryMinHead || ehead > len(body)-e || uint64(len(body)-e-ehead) < esize {
				return nil, fmt.Errorf("cuda: fatbin: entry at offset %d claims %d+%d bytes, container has %d", off+head+e, ehead, esize, len(body)-e)
			}
			out = append(out, fatbinEntry{
				kind:    kind,
				arch:    int(le.Uint32(body[e+28:])),
				flags:   le.Uint64(body[e+40:]),
				payload: body[e+ehead : e+ehead+int(esize)],
			})
			e += ehead + int(esize)
		}
		off += head + int(size)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cuda: fatbin: no images")
	}
	return out, nil
}

// fatbinDescribe names the images of a fatbin, e.g. "sm_80, sm_90, compute_90
// (PTX)", or says why it cannot.
func fatbinDescribe(fb []byte) string {
	es, err := fatbinEntries(fb)
	if err != nil {
		return err.Error()
	}
	var names []string
	for _, e := range es {
		switch e.kind {
		case fatbinKindELF:
			names = append(names, fmt.Sprintf("sm_%d", e.arch))
		case fatbinKindPTX:
			names = append(names, fmt.Sprintf("compute_%d (PTX)", e.arch))
		}
	}
	return strings.Join(names, ", ")
}

// fatbinKernelParams returns, for every kernel of the fatbin's cubins, the
// byte sizes of its parameters in order. Kernels without parameters may be
// missing. Compressed cubins are skipped; if none can be read the error
// says so and the caller goes without the check.
func fatbinKernelParams(fb []byte) (map[string][]int, error) {
	es, err := fatbinEntries(fb)
	if err != nil {
		return nil, err
	}
	params := make(map[string][]int)
	read := 0
	for _, e := range es {
		if e.kind != fatbinKindELF || e.flags&fatbinCompressed != 0 {
			continue
		}
		ps, err := cubinKernelParams(e.payload)
		if err != nil {
			return nil, fmt.Errorf("cuda: fatbin: sm_%d cubin: %w", e.arch, err)
		}
		read++
		for k, sizes := range ps {
			if prev, ok := params[k]; ok && !equalSizes(prev, sizes) {
				return nil, fmt.Errorf("cuda: fatbin: kernel %s has parameter sizes %v in one cubin and %v in another", k, prev, sizes)
			}
			params[k] = sizes
		}
	}
	if read == 0 {
		return nil, fmt.Errorf("cuda: fatbin: no uncompressed cubin to read kernel parameters from")
	}
	return params, nil
}

// cubinKernelParams reads the EIATTR_KPARAM_INFO attributes of one cubin.
func cubinKernelParams(cubin []byte) (map[string][]int, error) {
	// nvcc stores its own version in the ELF header's e_version, which Go's
	// reader rejects; read a copy that says EV_CURRENT there instead.
	if len(cubin) < 24 {
		return nil, fmt.Errorf("%d bytes is too short for an ELF file", len(cubin))
	}
	patched := bytes.Clone(cubin)
	patched[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint32(patched[20:], uint32(elf.EV_CURRENT))
	f, err := elf.NewFile(bytes.NewReader(patched))
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	params := make(map[string][]int)
	for _, s := range f.Sections {
		kernel, ok := strings.CutPrefix(s.Name, ".nv.info.")
		if !ok || kernel == "" {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("section %s: %w", s.Name, err)
		}
		bySlot := make(map[int]int) // ordinal -> size
		for p := 0; p < len(data); {
			if len(data)-p < 4 {
				return nil, fmt.Errorf("section %s: truncated attribute at %d", s.Name, p)
			}
			format, attr, val := data[p], data[p+1], int(le.Uint16(data[p+2:]))
			p += 4
			if format != eifmtSVAL {
				continue
			}
			if val > len(data)-p {
				return nil, fmt.Errorf("section %s: attribute %#x at %d claims %d bytes", s.Name, attr, p-4, val)
			}
			if attr == eiattrKParamInfo && val >= 12 {
				ordinal := int(le.Uint16(data[p+4:]))
				size := int(le.Uint32(data[p+8:])>>18) & 0x3fff
				bySlot[ordinal] = size
			}
			p += val
		}
		if len(bySlot) == 0 {
			continue
		}
		ords := make([]int, 0, len(bySlot))
		for o := range bySlot {
			ords = append(ords, o)
		}
		sort.Ints(ords)
		sizes := make([]int, len(ords))
		for i, o := range ords {
			if o != i {
				return nil, fmt.Errorf("section %s: parameter %d is missing", s.Name, i)
			}
			sizes[i] = bySlot[o]
		}
		params[kernel] = sizes
	}
	return params, nil
}

func equalSizes(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
