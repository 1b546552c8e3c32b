package cuda

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// kernelResources is what ptxas reports of one kernel on one architecture.
type kernelResources struct {
	regs, smem int // registers per thread, static shared bytes
}

// ptxasLog is the resource report `make kernels` keeps.
const ptxasLog = "../build/kernels/ptxas.log"

var (
	ptxasEntry = regexp.MustCompile(`Compiling entry function '([^']+)' for '(sm_\d+)'`)
	ptxasUsed  = regexp.MustCompile(`Used (\d+) registers`)
	ptxasSmem  = regexp.MustCompile(`(\d+) bytes smem`)
)

// readPtxasLog parses `nvcc -Xptxas -v` output: kernel -> arch -> resources.
func readPtxasLog(path string) (map[string]map[string]kernelResources, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]map[string]kernelResources{}
	var name, arch string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := ptxasEntry.FindStringSubmatch(line); m != nil {
			name, arch = m[1], m[2]
			continue
		}
		if m := ptxasUsed.FindStringSubmatch(line); m != nil && name != "" {
			r := kernelResources{}
			r.regs, _ = strconv.Atoi(m[1])
			if sm := ptxasSmem.FindStringSubmatch(line); sm != nil {
				r.smem, _ = strconv.Atoi(sm[1])
			}
			if out[name] == nil {
				out[name] = map[string]kernelResources{}
			}
			out[name][arch] = r
			name = ""
		}
	}
	return out, sc.Err()
}

// launchFits says why a launch of block threads with dynamic shared bytes
// could not start on an sm_80 or sm_90 SM given the kernel's resources,
// or "" when it can: at most 1024 threads; registers allocated per warp
// in units of 256 (so 32*regs rounded up), at most 65,536 per block; at
// most 48 KiB of static plus dynamic shared memory without the opt-in
// attribute (which the host does not set).
func launchFits(r kernelResources, block Dim3, dynamic int) string {
	threads := max(block.X, 1) * max(block.Y, 1) * max(block.Z, 1)
	warps := (threads + 31) / 32
	perWarp := (32*r.regs + 255) / 256 * 256
	switch {
	case threads > 1024:
		return fmt.Sprintf("%d threads", threads)
	case warps*perWarp > 65536:
		return fmt.Sprintf("%d registers x %d threads = %d of the 65,536 a block may have", r.regs, threads, warps*perWarp)
	case r.smem+dynamic > 48*1024:
		return fmt.Sprintf("%d static + %d dynamic bytes of shared memory, over 48 KiB", r.smem, dynamic)
	}
	return ""
}

// evoBounded matches EVO_KERNELS_BOUNDED(NAME, THREADS, BLOCKS) in the
// kernel sources: the kernel and its grouped twin compiled with
// __launch_bounds__(THREADS, ...), which a launch of more threads fails.
var evoBounded = regexp.MustCompile(`(?m)^EVO_KERNELS_BOUNDED\((\w+),\s*(\d+)`)

// launchBounds reads the kernels' thread bounds from dir's .cu files.
func launchBounds(dir string) (map[string]int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.cu"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no kernel sources in %s (%v)", dir, err)
	}
	out := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, m := range evoBounded.FindAllSubmatch(b, -1) {
			n, _ := strconv.Atoi(string(m[2]))
			out[string(m[1])] = n
		}
	}
	return out, nil
}

// gridFits says why a grid (the largest in each dimension) is beyond
// what a launch may ask for, or "": x at most 2^31-1 blocks, y and z at
// most 65,535.
func gridFits(g Dim3) string {
	if g.X > math.MaxInt32 || g.Y > 65535 || g.Z > 65535 {
		return fmt.Sprintf("a grid of up to %d x %d x %d blocks (x at most 2^31-1, y and z at most 65,535)", g.X, g.Y, g.Z)
	}
	return ""
}

// launchLog is a driver that notes every launch's kernel, block and
// dynamic shared memory, whether launched alone or compiled into a
// program, and runs it on the inner driver. The emulator the package's
// tests share is wrapped in one (testdriver_test.go), and TestMain checks
// what it saw with checkLaunchResources.
type launchLog struct {
	Driver
	mu   sync.Mutex
	seen map[string]Cmd
	grid map[string]Dim3 // per kernel, the largest grid in each dimension
}

func newLaunchLog(d Driver) *launchLog {
	return &launchLog{Driver: d, seen: map[string]Cmd{}, grid: map[string]Dim3{}}
}

func (l *launchLog) note(c Cmd) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[fmt.Sprintf("%s %v %d", c.Kernel, c.Block, c.Shared)] = Cmd{Kernel: c.Kernel, Block: c.Block, Shared: c.Shared}
	g := l.grid[c.Kernel]
	l.grid[c.Kernel] = Dim3{X: max(g.X, c.Grid.X), Y: max(g.Y, c.Grid.Y), Z: max(g.Z, c.Grid.Z)}
}

func (l *launchLog) Launch(kernel string, grid, block Dim3, shared int, s Stream, args ...any) error {
	l.note(Cmd{Kernel: kernel, Grid: grid, Block: block, Shared: shared})
	return l.Driver.Launch(kernel, grid, block, shared, s, args...)
}

func (l *launchLog) Compile(cmds []Cmd) (Program, error) {
	for _, c := range cmds {
		if c.Kind == CmdLaunch {
			l.note(c)
		}
	}
	return l.Driver.Compile(cmds)
}

// launchRisks are kernels every full run of the package's tests must
// launch, so that the resource check covers them: the tensor-core
// attention at both precisions, grouped launches, the 1,024-thread
// reduction.
var launchRisks = []string{"attention_tc_fwd_d16_grouped", "attention_tc3_bwd_dkdv_d16_grouped", "attention_tc_bwd_dq_d64",
	"attention_tc3_fwd_d64", "reduce_sum", "conv1x1_bwd_grouped", "attention_bwd_dkdv_d64"}

// checkLaunchResources holds every launch l saw to what a real sm_80 and
// sm_90 SM can start, given the registers and static shared memory ptxas
// reports for the kernel: a launch asking for more fails on a GPU with
// "too many resources requested" (or an invalid argument), which the
// emulator, with no register file, cannot see. It returns a reason to
// skip when there is no fresh ptxas report (`make kernels` needs nvcc),
// else the problems found and, with all set (every test of the binary
// ran), the kernels of launchRisks that were never launched.
func checkLaunchResources(l *launchLog, all bool) (skip string, problems, uncovered []string) {
	li, err := os.Stat(ptxasLog)
	if err != nil {
		return fmt.Sprintf("no %s: run `make kernels` (needs nvcc)", ptxasLog), nil, nil
	}
	srcs, _ := filepath.Glob("../kernels/*.[ch]*")
	for _, src := range srcs {
		if si, err := os.Stat(src); err == nil && si.ModTime().After(li.ModTime()) {
			return fmt.Sprintf("%s is older than %s: run `make kernels`", ptxasLog, src), nil, nil
		}
	}
	// make kernels writes the report, then the fatbin: a fatbin older than
	// the report means nvcc failed and the report may be partial.
	if fi, err := os.Stat("kernels.fatbin"); err != nil || fi.ModTime().Before(li.ModTime()) {
		return fmt.Sprintf("cuda/kernels.fatbin is missing or older than %s (did nvcc fail?): run `make kernels`", ptxasLog), nil, nil
	}
	res, err := readPtxasLog(ptxasLog)
	if err != nil || len(res) == 0 {
		return "", []string{fmt.Sprintf("%s: no kernel resources read (%v)", ptxasLog, err)}, nil
	}
	bounds, err := launchBounds("../kernels")
	if err != nil {
		return "", []string{err.Error()}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	kernels := map[string]bool{}
	for _, c := range l.seen {
		kernels[c.Kernel] = true
		threads := max(c.Block.X, 1) * max(c.Block.Y, 1) * max(c.Block.Z, 1)
		if b, ok := bounds[strings.TrimSuffix(c.Kernel, groupedSuffix)]; ok && threads > b {
			problems = append(problems, fmt.Sprintf("%s: a block of %d threads, over its __launch_bounds__ of %d", c.Kernel, threads, b))
		}
		byArch, ok := res[c.Kernel]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: launched, but not in %s", c.Kernel, ptxasLog))
			continue
		}
		for _, arch := range []string{"sm_80", "sm_90"} {
			r, ok := byArch[arch]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: no %s code in %s", c.Kernel, arch, ptxasLog))
				continue
			}
			if why := launchFits(r, c.Block, c.Shared); why != "" {
				problems = append(problems, fmt.Sprintf("%s on %s, block %v: %s", c.Kernel, arch, c.Block, why))
			}
		}
	}
	for k, g := range l.grid {
		if why := gridFits(g); why != "" {
			problems = append(problems, k+": "+why)
		}
	}
	sort.Strings(problems)
	if all {
		for _, k := range launchRisks {
			if !kernels[k] {
				uncovered = append(uncovered, k)
			}
		}
	}
	return "", problems, uncovered
}

// TestLaunchFits checks the resource rule itself on known limits.
func TestLaunchFits(t *testing.T) {
	for _, c := range []struct {
		r       kernelResources
		block   Dim3
		dynamic int
		fits    bool
	}{
		{kernelResources{regs: 255}, Dim3{X: 256}, 0, true},  // 256 regs x 32 x 8 warps = 65,536
		{kernelResources{regs: 255}, Dim3{X: 288}, 0, false}, // a ninth warp
		{kernelResources{regs: 64}, Dim3{X: 1024}, 0, true},  // 64 x 1024
		{kernelResources{regs: 65}, Dim3{X: 1024}, 0, false}, // rounds to 72 per thread
		{kernelResources{regs: 8}, Dim3{X: 1025}, 0, false},  // too many threads
		{kernelResources{regs: 32, smem: 1024}, Dim3{X: 128}, 48 * 1024, false},
		{kernelResources{regs: 32}, Dim3{X: 128}, 48 * 1024, true},
	} {
		if got := launchFits(c.r, c.block, c.dynamic) == ""; got != c.fits {
			t.Errorf("%+v block %v dynamic %d: fits %v, want %v", c.r, c.block, c.dynamic, got, c.fits)
		}
	}
}

// TestLaunchBounds reads the bounded kernels from the sources:
// conv1x1_bwd is compiled for at most 256 threads.
func TestLaunchBounds(t *testing.T) {
	b, err := launchBounds("../kernels")
	if err != nil {
		t.Fatal(err)
	}
	if b["conv1x1_bwd"] != 256 {
		t.Errorf("bounds %v, want conv1x1_bwd at 256", b)
	}
}
