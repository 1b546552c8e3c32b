//go:build cuda

package cuda

import (
	"fmt"

	"gorgonia.org/cu"
)

// Available reports whether this binary can use a GPU. (A cuda build only
// gets this far on a machine with one: cu's init exits otherwise.)
func Available() bool { return true }

// Devices lists the GPUs the driver reports.
func Devices() ([]Device, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: count devices: %w", err)
	}
	var ds []Device
	for i := 0; i < n; i++ {
		d := cu.Device(i)
		name, err := d.Name()
		if err != nil {
			return nil, fmt.Errorf("cuda: device %d name: %w", i, err)
		}
		mem, err := d.TotalMem()
		if err != nil {
			return nil, fmt.Errorf("cuda: device %d memory: %w", i, err)
		}
		major, minor, err := d.ComputeCapability()
		if err != nil {
			return nil, fmt.Errorf("cuda: device %d compute capability: %w", i, err)
		}
		ds = append(ds, Device{Index: i, Name: name, TotalMemory: mem, Compute: [2]int{major, minor}})
	}
	return ds, nil
}

// OpenDevice opens GPU i through the real driver.
func OpenDevice(i int) (Driver, error) { return NewReal(i) }
