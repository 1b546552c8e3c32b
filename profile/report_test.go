package profile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReportWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	r := NewReport("population", "emulator", twoStreams(), fixtureSamples(t))
	r.TrackNames = map[int]string{0: "stream 0", 1: "stream 1"}
	r.GPU = &DeviceInfo{Name: "NVIDIA H100 80GB HBM3", GPM: true}
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if got.Workload != "population" || len(got.Spans) != 5 || len(got.Samples) != 31 || len(got.Kernels) != 4 ||
		got.Summary.Steps != 2 || got.GPU == nil || !got.GPU.GPM || got.Samples[5].GPM == nil {
		t.Errorf("read back %+v", got)
	}
	// The fixture's steady state: utilization.gpu near 100%, GPM SM
	// utilization near 35% (the point of recording GPM).
	gs := got.GPUSummary
	if gs.Samples != 31 || !gs.HaveGPM || gs.MeanGPUUtil < 60 || gs.MeanSMUtil > 40 || gs.MeanSMUtil < 15 || gs.PeakMemMB < 12000 || gs.PeakMemMB > 13000 {
		t.Errorf("gpu summary %+v", gs)
	}
	f, err := os.Open(filepath.Join(dir, TraceFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := ValidateTrace(f)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Spans != 8 || sum.TrackNames[1] != "stream 1" {
		t.Errorf("trace %+v", sum)
	}
	if st, err := os.Stat(filepath.Join(dir, PlotFile)); err != nil || st.Size() < 1000 {
		t.Errorf("plot: %v", err)
	}

	// Without samples: no plot, and a note saying so.
	dir2 := t.TempDir()
	r2 := NewReport("train", "cpu", twoStreams(), nil)
	if err := r2.Write(dir2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir2, PlotFile)); !os.IsNotExist(err) {
		t.Errorf("plot drawn without samples: %v", err)
	}
	got2, err := ReadReport(filepath.Join(dir2, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(got2.Notes) != 1 || !strings.Contains(got2.Notes[0], "no GPU samples") {
		t.Errorf("notes %v", got2.Notes)
	}
}
