package profile

import (
	"errors"
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	colorSM   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorGPU  = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colorOcc  = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colorDRAM = color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	colorMem  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// ErrNoSamples is returned by PlotUtilization when there is nothing to draw.
var ErrNoSamples = errors.New("profile: no GPU samples to plot")

// PlotUtilization draws samples as a PNG of two aligned panels over time:
// above, SM utilization (GPM's where the device has it, with occupancy and
// DRAM bandwidth, and utilization.gpu for comparison), below, the memory
// in use.
func PlotUtilization(path string, samples []Sample) error {
	if len(samples) == 0 {
		return ErrNoSamples
	}
	gpm := false
	for _, s := range samples {
		gpm = gpm || s.GPM != nil
	}
	var sm, gpu, occ, dram, mem plotter.XYs
	memTotal := 0.0
	for _, s := range samples {
		t := s.TimeMs / 1000
		gpu = append(gpu, plotter.XY{X: t, Y: s.GPUUtil})
		if s.GPM != nil {
			sm = append(sm, plotter.XY{X: t, Y: s.GPM.SMUtil})
			occ = append(occ, plotter.XY{X: t, Y: s.GPM.SMOccupancy})
			dram = append(dram, plotter.XY{X: t, Y: s.GPM.DRAMBWUtil})
		}
		mem = append(mem, plotter.XY{X: t, Y: s.MemUsedMB / 1024})
		memTotal = max(memTotal, s.MemTotalMB/1024)
	}

	top := plot.New()
	top.Title.Text = "GPU utilization"
	top.Y.Label.Text = "%"
	// Headroom above 100% keeps the legend clear of the lines.
	top.Y.Min, top.Y.Max = 0, 100+12*float64(2+boolInt(gpm)*3)
	top.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 25}, {Value: 50, Label: "50"}, {Value: 75}, {Value: 100, Label: "100"}})
	series := []struct {
		name string
		xy   plotter.XYs
		c    color.Color
	}{{"utilization.gpu (a kernel ran)", gpu, colorGPU}}
	if gpm {
		series = append([]struct {
			name string
			xy   plotter.XYs
			c    color.Color
		}{{"SM utilization (GPM)", sm, colorSM}, {"SM occupancy (GPM)", occ, colorOcc}, {"DRAM bandwidth (GPM)", dram, colorDRAM}}, series...)
	}
	for _, s := range series {
		if err := addLine(top, s.name, s.xy, s.c); err != nil {
			return fmt.Errorf("profile: plot %s: %w", path, err)
		}
	}
	top.Legend.Top = true

	bottom := plot.New()
	bottom.Title.Text = "GPU memory"
	bottom.X.Label.Text = "time (s)"
	bottom.Y.Label.Text = "GiB used"
	bottom.Y.Min = 0
	if memTotal > 0 {
		bottom.Y.Max = memTotal
	}
	if err := addLine(bottom, "", mem, colorMem); err != nil {
		return fmt.Errorf("profile: plot %s: %w", path, err)
	}
	// Same time axis on both panels.
	xmin, xmax := min(top.X.Min, bottom.X.Min), max(top.X.Max, bottom.X.Max)
	top.X.Min, top.X.Max, bottom.X.Min, bottom.X.Max = xmin, xmax, xmin, xmax

	const w, h = 8 * vg.Inch, 6 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	plots := [][]*plot.Plot{{top}, {bottom}}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}

	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("profile: plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("profile: plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("profile: plot %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("profile: plot: %w", err)
	}
	return nil
}

func addLine(p *plot.Plot, name string, xy plotter.XYs, c color.Color) error {
	if len(xy) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	p.Add(l)
	if name != "" {
		p.Legend.Add(name, l)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
