#!/usr/bin/env bash
# run.sh OUTDIR — evosearch's checks on a GPU host (DESIGN.md §6).
#
# Runs from the folder `make gpu-bundle` builds (copy it to a host with an
# NVIDIA driver; no Go or CUDA toolkit needed there): prints nvidia-smi,
# finds libcuda.so.1, then, most valuable first: the real-driver tests and
# the conformance suite on the GPU, proxy-50 at every stage and the PyTorch
# peer, a profile of proxy-50, the kernel benchmarks, a GPU search, the
# single-network and micro-benchmarks, and compute-sanitizer on a short
# slice. With the device tool, whose runs return at most 8 files, use
#   bash gpu-bundle/run.sh /tmp/o; tar czf $OUT/logs.tgz -C /tmp/o .; cp /tmp/o/report.md $OUT/ A failing step is recorded and the run goes on,
# so one run reports everything. Logs and report.md go to OUTDIR; the
# report ends with the lines that matter most.
#
# Environment:
#   RUN_BUDGET_S             seconds for the whole run (default 570: fits 10 minutes)
#   EVOSEARCH_TEST_DEVICE    GPU index the tests use (default 0)
#   EVOSEARCH_SANITIZE_RUN   -test.run filter for the sanitizer slice
#   EVOSEARCH_BENCHTIME      -test.benchtime of the micro-benchmarks (default 0.5s)
set -u

if [ $# -ne 1 ]; then
	echo "usage: bash run.sh OUTDIR" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
# The bundle's binaries read the kernels from this file (built with
# -tags cudaextfatbin: the bundle carries the fatbin once, not in each).
export EVOSEARCH_FATBIN="$here/kernels.fatbin"
mkdir -p "$1" || exit 1
out=$(cd "$1" && pwd)
t0=$(date +%s)
deadline=$((t0 + ${RUN_BUDGET_S:-570}))
san_run=${EVOSEARCH_SANITIZE_RUN:-'TestReal(Copies|Launch)$|^TestConformance(BF16)?$/^([0-9]|1[0-3])$'}
benchtime=${EVOSEARCH_BENCHTIME:-0.5s}
bin=$here/evosearch
ctest=$here/cuda.test
status_file=$out/steps.tsv
: >"$status_file"
nstep=0

say() { echo "[run.sh $(date +%H:%M:%S)] $*"; }

# step NAME MAX_SECONDS CMD...: runs CMD with its output in OUTDIR/NN-NAME.log,
# within MAX_SECONDS and what is left of the budget; records the outcome.
step() {
	local name=$1 max=$2
	shift 2
	nstep=$((nstep + 1))
	local log
	log=$(printf '%s/%02d-%s.log' "$out" "$nstep" "$name")
	local left=$((deadline - $(date +%s) - 5))
	if [ "$left" -lt 15 ]; then
		say "$name: skipped, the time budget is spent"
		printf '%s\tskipped (no time left)\t0\t%s\n' "$name" "$(basename "$log")" >>"$status_file"
		return 0
	fi
	local lim=$((max < left ? max : left))
	say "$name (up to ${lim}s): $*"
	echo "\$ $*" >"$log"
	local s=$(date +%s) rc
	if command -v timeout >/dev/null 2>&1; then
		timeout -k 10 "$lim" "$@" >>"$log" 2>&1
	else
		"$@" >>"$log" 2>&1
	fi
	rc=$?
	local secs=$(($(date +%s) - s)) st
	case $rc in
	0) st=ok ;;
	124 | 137) st="TIMEOUT after ${lim}s" ;;
	*) st="FAIL (exit $rc)" ;;
	esac
	say "$name: $st in ${secs}s"
	if [ "$rc" -ne 0 ]; then tail -n 15 "$log" | sed 's/^/    /'; fi
	printf '%s\t%s\t%s\t%s\n' "$name" "$st" "$secs" "$(basename "$log")" >>"$status_file"
	return 0
}

# skip NAME WHY: records a step that cannot run here.
skip() {
	nstep=$((nstep + 1))
	say "$1: skipped, $2"
	printf '%s\tskipped (%s)\t0\t-\n' "$1" "$2" >>"$status_file"
}

# --- the GPU, first -----------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1; then
	nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt"
	nvidia-smi -q >"$out/nvidia-smi-q.txt" 2>&1
else
	echo "nvidia-smi: not found" | tee "$out/nvidia-smi.txt"
fi

# --- libcuda.so.1: the driver's own, never the toolkit's stub -----------------
find_libcuda() {
	local p d
	p=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 / && /x86-64/ && !/stubs/ {print $NF; exit}')
	if [ -n "$p" ] && [ -e "$p" ]; then
		dirname "$p"
		return 0
	fi
	for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu \
		/usr/lib64 /usr/lib/x86_64-linux-gnu/nvidia/current /usr/local/cuda/compat; do
		if [ -e "$d/libcuda.so.1" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}
if libdir=$(find_libcuda); then
	export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	say "libcuda.so.1 in $libdir ($(readlink -f "$libdir/libcuda.so.1" 2>/dev/null))"
else
	libdir=""
	say "libcuda.so.1 not found (ldconfig -p, /usr/local/nvidia/lib64, /usr/lib/x86_64-linux-gnu): the GPU steps will fail"
fi

{
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "host:    $(uname -n) ($(uname -srm))"
	echo "cpus:    $(nproc 2>/dev/null)"
	echo "glibc:   $(ldd --version 2>&1 | head -1) (the bundle needs $(sed -n 's/^glibc needed by evosearch: *//p' "$here/BUILD.txt" 2>/dev/null))"
	echo "libcuda: ${libdir:-not found}"
	echo "bundle:"
	sed 's/^/  /' "$here/BUILD.txt" 2>/dev/null
	echo "ldd evosearch:"
	ldd "$bin" 2>&1 | sed 's/^/  /'
} >"$out/env.txt"

# --- compute-sanitizer: the host's (newer, knows the host's GPU) if its
# injection libraries sit next to it, else the one the bundle carries.
sanitizer=()
for c in "$(command -v compute-sanitizer 2>/dev/null)" /usr/local/cuda/compute-sanitizer/compute-sanitizer \
	/usr/local/cuda/bin/compute-sanitizer; do
	[ -n "$c" ] && [ -x "$c" ] || continue
	real=$(readlink -f "$c")
	if [ -f "$(dirname "$real")/libsanitizer-collection.so" ]; then
		sanitizer=("$real")
		break
	fi
done
if [ ${#sanitizer[@]} -eq 0 ] && [ -x "$here/sanitizer/compute-sanitizer" ]; then
	sanitizer=("$here/sanitizer/compute-sanitizer" --injection-path "$here/sanitizer")
fi

cd "$here" || exit 1

# --- in order of value, since the budget may end the run early ---------------
has_torch=false
if python3 -c 'import torch; assert torch.cuda.is_available()' >/dev/null 2>&1; then has_torch=true; fi
has_pop=false
if [ -x "$bin" ] && "$bin" bench --help 2>&1 | grep -qE '^ *population'; then has_pop=true; fi

# 1. correctness on the GPU: the driver, then every op, training steps and
#    population training (all stages) against the CPU reference
if [ -x "$ctest" ]; then
	step driver-tests 120 "$ctest" -test.run '^TestReal' -test.v -test.timeout 110s
	step conformance 240 "$ctest" -test.run 'Conformance|Grouped|Sched|GemmTiles|FoldedReLU|FoldedBNGrad|BackendOverwrite|BackendVariants|TF32|BF16' -test.v -test.timeout 230s
else
	skip driver-tests "cuda.test missing from the bundle"
	skip conformance "cuda.test missing from the bundle"
fi

# 1b. each op's kernels alone, attention at FP32, TF32 and 3xTF32, each with
#     float32 and bfloat16 activations (seconds; the clearest reading of the
#     tensor-core kernels against the FP32 ones, and of the bf16 kernels)
if [ -x "$bin" ] && "$bin" bench --help 2>&1 | grep -qE '^ *kernels'; then
	step bench-kernels 120 "$bin" bench kernels --device cuda --storage fp32,bf16
fi

# 2. proxy-50 (issue 5): the three stages side by side at FP32, then stage 3
#    with attention on the tensor cores (TF32 and 3xTF32) and activations
#    stored as float32 and as bfloat16, on 4 steps of each of the 5 epochs
#    (projected to whole epochs), then in full with the fastest path; then
#    the PyTorch peer on the same genomes, one at a time and as concurrent
#    processes
if $has_pop; then
	step bench-population-stages 120 "$bin" bench population --stage 1,2,3 --precision fp32 --epochs 5 --max-steps 4
	step bench-population-precisions 180 "$bin" bench population --stage 3 --precision tf32,3xtf32 --storage fp32,bf16 --epochs 5 --max-steps 4
	# the full run at the precision and storage whose projection was best
	# above (a device that fails the tensor-core self-check prints no
	# tensor-core line), else at FP32 with float32 activations
	full_prec=fp32 full_store=fp32
	prec_log=$(printf '%s/%02d-%s.log' "$out" "$nstep" bench-population-precisions) # this run's, not a stale one
	best=$(grep -hs '"bench":"population"' "$prec_log" | awk '{ p = $0; sub(/.*"projected_evals_per_gpu_hour":/, "", p); sub(/[,}].*/, "", p)
		if (p + 0 > b) { b = p + 0; line = $0 } } END { print line }')
	if [ -n "$best" ]; then
		full_prec=$(echo "$best" | sed -n 's/.*"precision":"\([a-z0-9]*\)".*/\1/p')
		full_store=$(echo "$best" | sed -n 's/.*"storage":"\([a-z0-9]*\)".*/\1/p')
	fi
	step bench-population 240 "$bin" bench population --stage 3 --precision "${full_prec:-fp32}" --storage "${full_store:-fp32}"
else
	skip bench-population "this evosearch has no bench population"
fi
if $has_torch && $has_pop && [ -f "$here/torch_population.py" ] &&
	"$bin" bench population --emit-genomes "$out/genomes.json" >/dev/null 2>&1; then
	# about 13 s per genome one at a time on an H100 (5 epochs)
	step torch-population 300 env PYTHONUNBUFFERED=1 python3 "$here/torch_population.py" sweep "$out/genomes.json" \
		--device cuda --procs ${TORCH_PROCS:-1,4} --limit ${TORCH_LIMIT:-4} --tf32
else
	skip torch-population "no CUDA-enabled torch, torch_population.py or bench population here"
fi

# 3. proxy-50's step launch by launch with NVML/GPM samples (issue 6)
if $has_pop; then
	step profile-population 120 "$bin" profile --workload population --device cuda --candidates 50 \
		--stage 3 --precision "${full_prec:-fp32}" --storage "${full_store:-fp32}" --epochs 1 --max-steps 40 --train 5000 --val 1000 --output "$out/profile-population"
fi

# 3b. the PyTorch peer with bfloat16 autocast as well, so that "the best
#     PyTorch configuration" includes the arithmetic our bf16 storage uses
#     (the summary takes the best rate of both sweeps)
if $has_torch && [ -f "$out/genomes.json" ]; then
	step bf16-torch-population 200 env PYTHONUNBUFFERED=1 python3 "$here/torch_population.py" sweep "$out/genomes.json" \
		--device cuda --procs ${TORCH_PROCS:-1,4} --limit ${TORCH_LIMIT:-4} --tf32 --amp bf16
fi

# 4. a search on the GPU end to end, the single-network figures, the driver
#    micro-benchmarks
if [ -x "$bin" ]; then
	step search-gpu 120 "$bin" search --dataset synthetic --search-space darts-like --generations 2 \
		--popsize 4 --proxy-epochs 1 --device cuda --seed 1 --output "$out/search-gpu"
fi
if [ -x "$bin" ] && "$bin" train --help 2>&1 | grep -q -- '--gpu-precision'; then
	# the single-network figure to hold against torch-train-gpu: DARTS_V2,
	# C=16, L=5, batch 64 (metrics.csv's images_per_s)
	step train-gpu 120 "$bin" train --arch darts_v2 --dataset synthetic --channels 16 --layers 5 --epochs 2 \
		--max-steps 40 --device cuda --gpu-precision tf32 --output "$out/train-gpu"
fi
if $has_torch && [ -f "$here/torch_darts.py" ]; then
	step torch-train-gpu 90 python3 "$here/torch_darts.py" train --device cuda --steps 50
else
	skip torch-train-gpu "no python3 with CUDA-enabled torch here"
fi
if [ -x "$bin" ]; then
	step bench-train-gpu 120 "$bin" bench train --backend cuda --steps 50
fi
if [ -x "$ctest" ]; then
	step micro-bench 120 "$ctest" -test.run '^$' -test.bench . -test.benchmem -test.benchtime "$benchtime" -test.timeout 110s
fi
if [ -x "$bin" ]; then
	step bench-train-cpu 90 "$bin" bench train --steps 5 --warmup 1
fi

# --- the rest of compute-sanitizer, as time allows -------------------------------
if [ -x "$ctest" ] && [ ${#sanitizer[@]} -eq 0 ]; then
	skip memcheck "no compute-sanitizer here or in the bundle"
fi
if [ -x "$ctest" ] && [ ${#sanitizer[@]} -gt 0 ]; then
	step memcheck 150 "${sanitizer[@]}" --tool memcheck --error-exitcode 3 \
		"$ctest" -test.run "$san_run" -test.v -test.timeout 140s
	step racecheck 120 "${sanitizer[@]}" --tool racecheck --error-exitcode 3 \
		"$ctest" -test.run "$san_run" -test.v -test.timeout 110s
	step initcheck 90 "${sanitizer[@]}" --tool initcheck --error-exitcode 3 \
		"$ctest" -test.run "$san_run" -test.v -test.timeout 80s
	step synccheck 90 "${sanitizer[@]}" --tool synccheck --error-exitcode 3 \
		"$ctest" -test.run "$san_run" -test.v -test.timeout 80s
	# The tensor-core attention's bfloat16 twins (2-byte loads and stores
	# around float shared memory), at TF32.
	step memcheck-attention-bf16 90 "${sanitizer[@]}" --tool memcheck --error-exitcode 3 \
		"$ctest" -test.run '^TestConformanceAttentionBF16$/^tf32$' -test.v -test.timeout 80s
fi

# --- report.md: overview first, the lines that matter most last -----------------
logof() { awk -F'\t' -v n="$1" '$1 == n {print $4}' "$status_file"; }
statusof() { awk -F'\t' -v n="$1" '$1 == n {print $2}' "$status_file"; }
total=$(wc -l <"$status_file")
failed=$(awk -F'\t' '$2 ~ /^(FAIL|TIMEOUT)/ {print $1}' "$status_file" | tr '\n' ' ')
nfailed=$(awk -F'\t' '$2 ~ /^(FAIL|TIMEOUT)/' "$status_file" | wc -l)
nok=$(awk -F'\t' '$2 == "ok"' "$status_file" | wc -l)
{
	echo "# evosearch GPU run, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo
	echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
	echo "host: $(uname -n), $(nproc 2>/dev/null) CPUs; libcuda: ${libdir:-not found}; sanitizer: ${sanitizer[0]:-none}"
	echo "bundle: $(sed -n 's/^commit: *//p' "$here/BUILD.txt" 2>/dev/null), built $(sed -n 's/^built: *//p' "$here/BUILD.txt" 2>/dev/null)"
	echo "total time: $(($(date +%s) - t0)) s"
	echo
	echo "| step | outcome | seconds | log |"
	echo "|---|---|---:|---|"
	awk -F'\t' '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}' "$status_file"
	echo
	echo '## Benchmarks'
	echo
	echo '```'
	for s in micro-bench; do
		l=$(logof $s)
		[ -n "$l" ] && [ -f "$out/$l" ] && grep -E '^Benchmark' "$out/$l"
	done
	for s in bench-train-cpu bench-train-gpu torch-train-gpu bench-population-stages bench-population-precisions bench-population bench-kernels torch-population bf16-torch-population; do
		l=$(logof $s)
		[ -n "$l" ] && [ -f "$out/$l" ] && grep -E '^\{' "$out/$l"
	done
	echo '```'
	echo
	# evosearch's proxy-50 against the best PyTorch configuration
	evo_rate=$(grep -h '"bench":"population"' "$out"/*bench-population.log 2>/dev/null | grep '"stage":"graph"' |
		sed -n 's/.*"evals_per_gpu_hour":\([0-9.]*\).*/\1/p' | tail -1)
	torch_rate=$(grep -h 'population-torch-best' "$out"/*torch-population.log 2>/dev/null |
		sed -n 's/.*"evals_per_gpu_hour": *\([0-9.]*\).*/\1/p' | sort -g | tail -1) # the best of the float and bf16 sweeps
	evo_prec=$(grep -h '"bench":"population"' "$out"/*bench-population.log 2>/dev/null | grep '"stage":"graph"' |
		sed -n 's/.*"precision":"\([a-z0-9]*\)".*/\1/p' | tail -1)
	evo_store=$(grep -h '"bench":"population"' "$out"/*bench-population.log 2>/dev/null | grep '"stage":"graph"' |
		sed -n 's/.*"storage":"\([a-z0-9]*\)".*/\1/p' | tail -1)
	echo "proxy-50 evaluations per GPU-hour: evosearch (graph, ${evo_prec:-?}, ${evo_store:-?} activations) ${evo_rate:-not measured}, best PyTorch ${torch_rate:-not measured}"
	if [ -n "$evo_rate" ] && [ -n "$torch_rate" ]; then
		echo "ratio evosearch / PyTorch: $(awk -v a="$evo_rate" -v b="$torch_rate" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
	fi
	# how close the step runs to the memory bound: its compulsory traffic
	# (cuda.Cost) per second of training, against the card's peak
	evo_line=$(grep -h '"bench":"population"' "$out"/*bench-population.log 2>/dev/null | grep '"stage":"graph"' | tail -1)
	if [ -n "$evo_line" ]; then
		echo "proxy-50 step: $(echo "$evo_line" | sed -n 's/.*"step_gb":\([0-9.]*\).*/\1/p') GB compulsory traffic," \
			"$(echo "$evo_line" | sed -n 's/.*"step_ms":\([0-9.]*\).*/\1/p') ms;" \
			"achieved $(echo "$evo_line" | sed -n 's/.*"achieved_gb_per_s":\([0-9.]*\).*/\1/p') GB/s" \
			"(an H100 SXM's HBM3 peak is about 3,350 GB/s)"
	fi
	echo
	echo '## Failures'
	echo
	echo '```'
	awk -F'\t' '$2 ~ /^(FAIL|TIMEOUT)/ {print $1 "\t" $4}' "$status_file" | while IFS=$'\t' read -r s l; do
		[ -f "$out/$l" ] || continue
		# test failures and sanitizer findings; else the end of the log
		if ! grep -E '^\s*--- FAIL|^(FAIL|panic:)|_test.go:[0-9]+:|^=+ (Error|ERROR|Invalid|Race|Uninitialized|Barrier|Program hit)' "$out/$l" |
			head -n 25 | sed "s/^/$s: /" | grep .; then
			tail -n 5 "$out/$l" | sed "s/^/$s: /"
		fi
	done
	echo '```'
	echo
	echo '## Verdict'
	echo
	for s in driver-tests conformance; do
		l=$(logof $s)
		if [ -n "$l" ] && [ -f "$out/$l" ]; then
			p=$(grep -cE '^\s*--- PASS' "$out/$l")
			f=$(grep -cE '^\s*--- FAIL' "$out/$l")
			k=$(grep -cE '^\s*--- SKIP' "$out/$l")
			echo "- $s: $(statusof $s); $p passed, $f failed, $k skipped (tests and subtests)"
		fi
	done
	for s in memcheck racecheck initcheck synccheck; do
		l=$(logof $s)
		if [ -n "$l" ] && [ -f "$out/$l" ]; then
			summary=$(grep -h 'ERROR SUMMARY' "$out/$l" | tail -1 | sed 's/^=* *//')
			echo "- $s: $(statusof $s); ${summary:-no ERROR SUMMARY line, see $l}"
		fi
	done
	echo "- OVERALL: $nok of $total steps ok; ${nfailed} failed${failed:+: $failed}"
} >"$out/report.md"

echo
cat "$out/report.md"
echo
say "logs and report.md in $out"
[ "$nfailed" -eq 0 ]
