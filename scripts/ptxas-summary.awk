# Summarises `nvcc -Xptxas -v` output (read on stdin) as one line per kernel,
# sorted by name: for each architecture, registers, static shared memory,
# stack frame and spill bytes (stores + loads). Kernels that spill are
# flagged, since spills to local memory are the usual reason a kernel runs
# slower than its arithmetic suggests. Lines that are not ptxas's resource
# report (warnings, errors) pass through unchanged so nothing nvcc says is
# lost.
/^ptxas info *: Compiling entry function/ {
	split($0, q, "'")
	name = q[2]; arch = q[4]; stack = 0; st = 0; ld = 0
	next
}
/^ptxas info *: Function properties for/ { next }
/bytes stack frame/ { stack = $1; st = $5; ld = $9; next }
/^ptxas info *: Used [0-9]+ registers/ {
	smem = 0
	if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH) + 0
	if (name == "") next
	if (!(name in seen)) { names[++n] = name; seen[name] = 1 }
	if (!(arch in archseen)) { archs[++na] = arch; archseen[arch] = 1 }
	info[name, arch] = sprintf("   %s %3d %6d %5d %5d", arch, $5, smem, stack, st + ld)
	if (st + ld > 0) spilled[name] = 1
	name = ""
	next
}
/^ptxas info *: [0-9]+ bytes gmem/ { next }
/^ptxas info *: Compile time/ { next }
{ print }
END {
	if (n == 0) exit
	# architectures in numeric order (sm_80, sm_90, sm_100)
	for (i = 2; i <= na; i++)
		for (j = i; j > 1 && num(archs[j-1]) > num(archs[j]); j--) {
			t = archs[j]; archs[j] = archs[j-1]; archs[j-1] = t
		}
	printf "  %-28s   per architecture: registers, shared memory, stack and spill bytes\n", "kernel"
	cmd = "sort"
	for (i = 1; i <= n; i++) {
		k = names[i]
		line = ""
		for (a = 1; a <= na; a++)
			line = line (((k, archs[a]) in info) ? info[k, archs[a]] : sprintf("   %-5s %21s", archs[a], "-"))
		printf "  %-28s%s%s\n", k, line, (k in spilled) ? "  <- SPILLS" : "" | cmd
		if (k in spilled) ns++
	}
	close(cmd)
	printf "  %d kernels, %d spilling\n", n, ns + 0
}

function num(a) { sub(/^[a-z_]*/, "", a); return a + 0 }
