package appliance

import "syscall"

// freeSpace is how many bytes unprivileged writers may still use on the
// file system holding dir; ok is false when it cannot tell.
func freeSpace(dir string) (free uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	unit := uint64(st.Frsize) // the unit of the block counts; Bsize where it is not set
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	return st.Bavail * unit, true
}
