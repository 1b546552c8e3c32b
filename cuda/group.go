package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Grouped launches (horizontal fusion). Launches of the same kernel, with
// the same block and dynamic shared size, from different candidates of a
// population become one launch of the kernel's grouped variant
// "<kernel>_grouped" (kernels/evo_cuda.h, EVO_KERNELS):
//
//	NAME_grouped(const evo_group_entry* table, int count, const unsigned char* blobs)
//
// launched with grid.x = the sum of every instance's blocks. The table has
// one 24-byte entry per instance (groupEntryBytes); blobs holds each
// instance's arguments packed as the C struct of the kernel's parameters
// (PackArgBlob). BuildGroup lays out both; the caller uploads them with
// Driver.CopyHtoDBytes and launches:
//
//	d.Launch(name, Dim3{X: total}, block, shared, stream, tablePtr, int32(len(ls)), blobsPtr)

// groupedKernels are the kernels that have a grouped variant: every
// EVO_KERNELS of kernels/*.cu. TestGroupedKernelsRegistered checks the list
// against the emulator's registry.
var groupedKernels = map[string]bool{
	// elementwise.cu
	"relu_fwd": true, "relu_bwd": true, "add2_fwd": true, "add_acc": true, "fill_f32": true,
	"concat_copy": true, "concat_bwd": true, "global_avg_pool_fwd": true, "global_avg_pool_bwd": true,
	"strided_gather": true, "strided_scatter_add": true, "act_widen": true, "act_narrow": true,
	// gemm.cu, linear.cu
	"gemm_strided": true, "conv1x1_bwd": true, "convdw_bwd": true, "add2_bn_fwd": true, "linear_bias_rows": true, "linear_bias_grad": true,
	// conv.cu
	"conv2d_fwd": true, "conv2d_fwd_depthwise": true, "conv2d_bwd_data": true, "conv2d_bwd_weight": true,
	// bn.cu
	"bn_stats": true, "bn_apply": true, "bn_bwd_reduce": true, "bn_bwd_dx": true,
	// pool.cu
	"max_pool_fwd": true, "max_pool_bwd": true, "avg_pool_fwd": true, "avg_pool_bwd": true,
	// loss.cu, sgd.cu, data.cu
	"softmax_xent": true, "reduce_sum": true, "sumsq_partial": true, "sgd_update": true, "gather_batch": true,
	"gather_batch_sched": true,
	// sched.cu
	"loss_log": true, "count_log": true, "sgd_update_sched": true, "counter_add": true,
}

// Attention (attention.cu): every kernel has a grouped variant; so has
// every bfloat16 twin.
func init() {
	for _, k := range attnKernels() {
		groupedKernels[k] = true
	}
	for _, k := range bf16Kernels() {
		groupedKernels[k] = true
	}
}

// groupedSuffix ends the name of every grouped variant.
const groupedSuffix = "_grouped"

// groupEntryBytes is the size of one evo_group_entry: long long blob at 0,
// int block_start at 8, int gx, gy, gz at 12, 16, 20.
const groupEntryBytes = 24

// maxGridX is the largest grid.x a launch may have (2^31 - 1).
const maxGridX = math.MaxInt32

// GroupedKernel names kernel's grouped variant ("<kernel>_grouped") and
// reports whether it has one.
func GroupedKernel(kernel string) (string, bool) {
	if !groupedKernels[kernel] {
		return "", false
	}
	return kernel + groupedSuffix, true
}

// alignUp rounds n up to a multiple of a (a power of two).
func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

// PackArgBlob packs launch arguments (the Go types Launch takes: DevicePtr,
// int32, uint32, float32, int64) as the C struct of the kernel's
// parameters: pointers and long long 8-byte aligned, int, unsigned and
// float 4-byte aligned, little-endian, the size rounded up to 8. It cannot
// check the arguments against the kernel's parameters (the grouped kernel
// takes only the blob), so the caller must pass exactly what the plain
// kernel's Launch takes.
func PackArgBlob(args []any) ([]byte, error) {
	var b []byte
	put := func(size int, v uint64) {
		b = append(b, make([]byte, alignUp(len(b), size)-len(b))...)
		if size == 8 {
			b = binary.LittleEndian.AppendUint64(b, v)
		} else {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
	}
	for i, a := range args {
		switch v := a.(type) {
		case DevicePtr:
			put(8, uint64(v))
		case int64:
			put(8, uint64(v))
		case int32:
			put(4, uint64(uint32(v)))
		case uint32:
			put(4, uint64(v))
		case float32:
			put(4, uint64(math.Float32bits(v)))
		default:
			return nil, fmt.Errorf("%w: argument blob: argument %d has Go type %T, want DevicePtr, int32, uint32, float32 or int64",
				ErrBadArgs, i, a)
		}
	}
	return append(b, make([]byte, alignUp(len(b), 8)-len(b))...), nil
}

// GroupLaunch is one instance: its own grid and arguments.
type GroupLaunch struct {
	Grid Dim3
	Args []any
}

// BuildGroup lays out the table (count entries, evo_group_entry layout) and
// the concatenated blobs for ls; totalBlocks is the grouped launch's
// grid.x. Instances keep their order: instance i's blocks follow instance
// i-1's. A zero grid field means 1, as in Launch.
func BuildGroup(ls []GroupLaunch) (table []byte, blobs []byte, totalBlocks int, err error) {
	if len(ls) == 0 {
		return nil, nil, 0, fmt.Errorf("%w: grouped launch without instances", ErrBadArgs)
	}
	if len(ls) > math.MaxInt32 {
		return nil, nil, 0, fmt.Errorf("%w: grouped launch of %d instances", ErrBadArgs, len(ls))
	}
	table = make([]byte, 0, groupEntryBytes*len(ls))
	for i, l := range ls {
		g := l.Grid
		for _, v := range []*int{&g.X, &g.Y, &g.Z} {
			if *v == 0 {
				*v = 1
			}
		}
		if g.X < 1 || g.Y < 1 || g.Z < 1 {
			return nil, nil, 0, fmt.Errorf("%w: grouped launch: instance %d has grid %dx%dx%d", ErrBadArgs, i, l.Grid.X, l.Grid.Y, l.Grid.Z)
		}
		blocks := g.X * g.Y * g.Z
		if g.X > maxGridX || g.Y > maxGridX || g.Z > maxGridX || blocks/g.Z/g.Y != g.X || blocks > maxGridX-totalBlocks {
			return nil, nil, 0, fmt.Errorf("%w: grouped launch: instance %d (grid %dx%dx%d) takes the total past %d blocks",
				ErrBadArgs, i, g.X, g.Y, g.Z, maxGridX)
		}
		blob, err := PackArgBlob(l.Args)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("cuda: grouped launch: instance %d: %w", i, err)
		}
		table = binary.LittleEndian.AppendUint64(table, uint64(len(blobs)))
		for _, v := range []int{totalBlocks, g.X, g.Y, g.Z} {
			table = binary.LittleEndian.AppendUint32(table, uint32(v))
		}
		blobs = append(blobs, blob...)
		totalBlocks += blocks
	}
	return table, blobs, totalBlocks, nil
}
