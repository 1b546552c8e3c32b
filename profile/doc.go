// Package profile measures where the time of a workload goes: per-kernel
// (GPU) or per-op (CPU) spans, GPU counters sampled through NVML, and the
// files `evosearch profile` writes from them (DESIGN.md §6, "Profiling").
//
// # Spans
//
// A Span is one timed piece of work on one track: a kernel launch on a
// CUDA stream, timed with events around it (cuda.PopOptions.TraceSteps
// produces these as cuda.KernelSpan), or one op call on the CPU, timed
// with the wall clock by OpRecorder, a nets.Backend wrapper. Both kinds go
// through the same code:
//
//   - Aggregate groups spans by name: calls, launches (a fused span counts
//     every candidate it stands for), total and mean time, share of the
//     summed span time, and GB/s and GFLOP/s where a span knows its bytes
//     and FLOPs.
//   - StepSpans adds one enclosing span per (track, step).
//   - WriteTrace writes a Chrome trace (the trace-event JSON object format
//     that chrome://tracing and https://ui.perfetto.dev load): "X" complete
//     events in microseconds, one track (tid) per stream or lane labelled
//     by thread_name metadata, NVML samples as "C" counter events in a
//     second process. ValidateTrace checks a trace against the rules a
//     viewer relies on; the tests run it on every trace they write.
//
// Invariants of a span list: EndUs >= StartUs; on one track, spans are
// disjoint or nested (work on one in-order stream is a sequence; the CPU
// recorder gives concurrent calls different lanes to keep it so).
//
// # Samples
//
// Sampler reads a GPU's counters every 100 ms in its own goroutine:
// utilization.gpu and memory utilization, memory used, power, SM and
// memory clocks, temperature. utilization.gpu is only the share of time
// in which some kernel ran, so a device kept busy by many tiny kernels
// reads 100%; on Hopper and newer the sampler also records GPU Performance
// Monitoring (GPM) metrics — SM utilization, SM occupancy, FP32, FP16 and
// tensor activity, DRAM bandwidth — which say how much of the chip that
// work used. NVML comes from github.com/NVIDIA/go-nvml, which loads
// libnvidia-ml.so.1 at run time: the binary builds and runs without it,
// and StartNVML returns ErrNoNVML on a machine without the driver.
//
// Samples are plain JSON (Sample, GPMSample), so recorded ones serve as
// test fixtures: testdata/h100_samples_synthetic.json is made up for the
// tests (shaped like an H100 training a small population), not measured.
//
// # Output
//
// Report.Write puts into one folder profile.json (the summary, the
// per-kernel table, every sample and span), trace.json, and
// utilization.png: SM utilization (GPM's when present, else
// utilization.gpu) and memory in use over time, drawn with gonum/plot.
package profile
