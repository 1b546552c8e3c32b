package profile

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>

// evo_nvml_probe opens path on its own (local symbols, so nothing of it
// leaks into the process's namespace) and reports, per name, whether the
// library defines it: has[i] = 1 or 0, and the file the loader opened in
// file (empty when unknown). It returns 0, or -1 when the file cannot be
// opened (dlerror's text in err).
static int evo_nvml_probe(const char* path, const char** names, int n, int* has, char* file, int filelen, char* err,
                          int errlen) {
	void* h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		const char* e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return -1;
	}
	for (int i = 0; i < n; i++) has[i] = dlsym(h, names[i]) != NULL;
	struct link_map* lm = NULL;
	file[0] = 0;
	if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name) snprintf(file, filelen, "%s", lm->l_name);
	dlclose(h);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"path/filepath"
	"unsafe"
)

// nvmlRequired are the entry points the sampler cannot do without;
// nvmlGPMSymbols those of GPM (a driver without them has no GPM).
// go-nvml binds each on its first call, and a missing one aborts the
// process, so the library is probed for them before go-nvml loads it.
var (
	nvmlRequired = []string{"nvmlInit_v2", "nvmlShutdown", "nvmlErrorString", "nvmlDeviceGetHandleByIndex_v2",
		"nvmlDeviceGetName", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetPowerUsage",
		"nvmlDeviceGetClockInfo", "nvmlDeviceGetTemperature"}
	nvmlPeakSymbols = []string{"nvmlDeviceGetMemoryBusWidth", "nvmlDeviceGetMaxClockInfo"}
	nvmlGPMSymbols  = []string{"nvmlGpmQueryDeviceSupport", "nvmlGpmSampleAlloc", "nvmlGpmSampleFree",
		"nvmlGpmSampleGet", "nvmlGpmMetricsGet"}
)

// nvmlSymbols says which of the sampler's optional parts path's library
// supports (the peak bandwidth query, GPM) and which file it is (symbolic
// links resolved; path itself when unknown); it fails when the file cannot
// be loaded or lacks a required entry point (not NVML, or too old).
func nvmlSymbols(path string) (peak, gpm bool, file string, err error) {
	names := append(append(append([]string(nil), nvmlRequired...), nvmlPeakSymbols...), nvmlGPMSymbols...)
	cnames := make([]*C.char, len(names))
	for i, n := range names {
		cnames[i] = C.CString(n)
		defer C.free(unsafe.Pointer(cnames[i]))
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	has := make([]C.int, len(names))
	const errLen = 512
	cerr := (*C.char)(C.malloc(errLen))
	defer C.free(unsafe.Pointer(cerr))
	// The C side only reads the names during the call.
	cn := (**C.char)(C.malloc(C.size_t(len(names)) * C.size_t(unsafe.Sizeof(cnames[0]))))
	defer C.free(unsafe.Pointer(cn))
	copy(unsafe.Slice(cn, len(names)), cnames)
	cfile := (*C.char)(C.malloc(errLen))
	defer C.free(unsafe.Pointer(cfile))
	if C.evo_nvml_probe(cpath, cn, C.int(len(names)), &has[0], cfile, errLen, cerr, errLen) != 0 {
		return false, false, "", fmt.Errorf("%s could not be loaded (%s)", path, C.GoString(cerr))
	}
	file = C.GoString(cfile)
	if file == "" {
		file = path
	}
	if real, err := filepath.EvalSymlinks(file); err == nil {
		file = real
	}
	all := func(from, to int) bool {
		for _, h := range has[from:to] {
			if h == 0 {
				return false
			}
		}
		return true
	}
	for i := range nvmlRequired {
		if has[i] == 0 {
			return false, false, "", fmt.Errorf("%s is not an NVML library this profiler can use: it lacks %s", path, names[i])
		}
	}
	r, p := len(nvmlRequired), len(nvmlPeakSymbols)
	return all(r, r+p), all(r+p, len(names)), file, nil
}
