package store

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// inotify reports the files created in one directory. The kernel queues the
// event inside the creating system call, so a sync that reads the queue
// sees every file created before the sync began.
type inotify struct {
	fd  int
	buf []byte
}

func watchDir(dir string) (dirWatcher, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("inotify_add_watch", err)
	}
	return &inotify{fd: fd, buf: make([]byte, 64<<10)}, nil
}

func (w *inotify) created() (names []string, relist bool) {
	for {
		n, err := syscall.Read(w.fd, w.buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if errors.Is(err, syscall.EAGAIN) {
			return names, relist
		}
		if err != nil || n <= 0 {
			return nil, true
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&w.buf[off]))
			end := off + syscall.SizeofInotifyEvent + int(ev.Len)
			if end > n {
				return nil, true
			}
			if ev.Mask&syscall.IN_Q_OVERFLOW != 0 {
				relist = true
			}
			name := w.buf[off+syscall.SizeofInotifyEvent : end]
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			if len(name) > 0 {
				names = append(names, string(name))
			}
			off = end
		}
	}
}

func (w *inotify) close() error { return syscall.Close(w.fd) }

// datasync is fdatasync(2): the data and the metadata needed to read it
// back (such as the size), as Badger's own msync does.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if !errors.Is(serr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return os.NewSyscallError("fdatasync", serr)
}
