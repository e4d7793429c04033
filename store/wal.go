package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The write-ahead log in front of the Bolt file. Each batch of writes is one
// record, appended with a single fdatasync before the batch is acknowledged;
// the Bolt file itself is only committed (two fsyncs) at checkpoints, which
// store the sequence number of the last record they include. The log is two
// files that take turns: a checkpoint switches the appends to the other file,
// overwritten from its start (everything it held is in the Bolt file), while
// the file it leaves stays as it is until the checkpoint's commit is durable.
// A file keeps its preallocated size, so a record's fdatasync never has a
// file size to flush. Open replays the records of both files after the Bolt
// file's seq, in seq order, and refuses a gap between them.
//
// A record is:
//
//	length uint32 (of seq and payload) | crc32c uint32 (of seq and payload) | seq uint64 | payload
//
// and its payload a run of entries:
//
//	walPut bucket uvarint(len key) key uvarint(len value) value
//	walDelete bucket uvarint(len key) key
//	walSequence bucket uvarint(sequence)
//
// Reading stops at the first record that is torn (short or failing its
// checksum), zero (preallocated space), or whose seq does not follow the
// previous one (left over from before the last checkpoint). A record failing
// its checksum before a whole one is damage, not a crash's torn tail: the
// store still opens, as databases do, and logs what it lost.

// Entry kinds.
const (
	walPut byte = iota + 1
	walDelete
	walSequence
)

const (
	walHeader = 16
	// walInitial is the log's size at first; it grows by walChunk until it
	// holds what is logged between two checkpoints, and keeps that size.
	walInitial = 1 << 20
	walChunk   = 4 << 20
	// walMaxRecord bounds a record's length; with the file's size, it keeps
	// a corrupt length field from making the reader allocate gigabytes.
	walMaxRecord = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errWALCorrupt means a record decoded but did not make sense: a bug or a
// damaged file, not a torn tail.
var errWALCorrupt = errors.New("corrupt write-ahead log")

// wal is one of the log's files. It is used by one goroutine at a time.
type wal struct {
	f    *os.File
	sync bool  // fdatasync each append
	pos  int64 // where the next record goes
	size int64 // the file's size, zero-filled beyond what was written
	buf  []byte
	// synced, when set, is told how long each append's fdatasync took.
	synced func(time.Duration)
	// damaged is the seq of the record at which records last stopped, if
	// that failed its checksum while the record after it is whole.
	damaged uint64
}

// openWAL opens or creates the log at path, zero-filled to walInitial. It
// does not read it: see records.
func openWAL(path string, sync bool) (*wal, error) {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	w := &wal{f: f, sync: sync}
	if err := w.prepare(path, errors.Is(statErr, fs.ErrNotExist)); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

func (w *wal) prepare(path string, created bool) error {
	fi, err := w.f.Stat()
	if err != nil {
		return err
	}
	w.size = fi.Size()
	if w.size < walInitial {
		if _, err := w.f.WriteAt(make([]byte, walInitial-w.size), w.size); err != nil {
			return err
		}
		w.size = walInitial
	}
	if !w.sync {
		return nil
	}
	if err := fdatasync(w.f); err != nil {
		return err
	}
	if !created {
		return nil
	}
	// A new file's name is only durable once its directory is synced.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// records calls fn with the seq and payload of each record, in order, until
// the end of the log. Each payload is a new slice that fn may keep (bbolt
// keeps the values put in a transaction until it ends).
func (w *wal) records(fn func(seq uint64, payload []byte) error) error {
	var (
		off   int64
		prev  uint64
		hdr   [walHeader]byte
		first = true
	)
	for {
		if _, err := w.f.ReadAt(hdr[:], off); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		seq := binary.LittleEndian.Uint64(hdr[8:16])
		if n < 8 || n > walMaxRecord || int64(n) > w.size-off-8 || (!first && seq != prev+1) {
			return nil
		}
		body := make([]byte, n)
		if _, err := w.f.ReadAt(body, off+8); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // torn: the file ends inside the record
			}
			return err
		}
		if crc32.Checksum(body, crcTable) != sum {
			// Torn, as the last record of a crash is; or damaged, if an
			// intact record follows it, which a log that syncs each record
			// before the next one never leaves. Either way it ends the log.
			if w.intact(off+8+int64(n), seq+1) {
				w.damaged = seq
			}
			return nil
		}
		if err := fn(seq, body[8:]); err != nil {
			return err
		}
		first, prev = false, seq
		off += 8 + int64(n)
	}
}

// intact reports whether a whole record with seq starts at off.
func (w *wal) intact(off int64, seq uint64) bool {
	var hdr [walHeader]byte
	if _, err := w.f.ReadAt(hdr[:], off); err != nil {
		return false
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	if n < 8 || n > walMaxRecord || int64(n) > w.size-off-8 || binary.LittleEndian.Uint64(hdr[8:16]) != seq {
		return false
	}
	body := make([]byte, n)
	if _, err := w.f.ReadAt(body, off+8); err != nil {
		return false
	}
	return crc32.Checksum(body, crcTable) == binary.LittleEndian.Uint32(hdr[4:8])
}

// append writes one record and, if the log syncs, waits for it to be on disk.
func (w *wal) append(seq uint64, payload []byte) error {
	n := 8 + len(payload)
	w.buf = slices.Grow(w.buf[:0], walHeader+len(payload))
	b := w.buf[:walHeader]
	binary.LittleEndian.PutUint32(b[0:4], uint32(n))
	binary.LittleEndian.PutUint64(b[8:16], seq)
	b = append(b, payload...)
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(b[8:], crcTable))
	end := w.pos + int64(len(b))
	if end > w.size {
		// Zero the space ahead and sync it now, once, so that later records
		// overwrite allocated blocks and their fdatasync has no metadata to write.
		size := max(end, w.size) + walChunk
		for at := w.size; at < size; at += int64(len(zeros)) {
			if _, err := w.f.WriteAt(zeros[:min(int64(len(zeros)), size-at)], at); err != nil {
				return fmt.Errorf("grow log: %w", err)
			}
		}
		if w.sync {
			if err := fdatasync(w.f); err != nil {
				return fmt.Errorf("grow log: %w", err)
			}
		}
		w.size = size
	}
	if _, err := w.f.WriteAt(b, w.pos); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	w.pos = end
	w.buf = b
	if !w.sync {
		return nil
	}
	start := time.Now()
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("sync log: %w", err)
	}
	if w.synced != nil {
		w.synced(time.Since(start))
	}
	return nil
}

// reset starts the file over: everything in it is in the checkpointed file.
func (w *wal) reset() { w.pos = 0 }

func (w *wal) close() error { return w.f.Close() }

// zeros is what a log file grows by, a piece at a time (never written to).
var zeros [64 << 10]byte

// walWriter builds a batch's payload.
type walWriter struct{ b []byte }

func (w *walWriter) put(bucket byte, k, v []byte) {
	w.b = append(w.b, walPut, bucket)
	w.b = binary.AppendUvarint(w.b, uint64(len(k)))
	w.b = append(w.b, k...)
	w.b = binary.AppendUvarint(w.b, uint64(len(v)))
	w.b = append(w.b, v...)
}

func (w *walWriter) del(bucket byte, k []byte) {
	w.b = append(w.b, walDelete, bucket)
	w.b = binary.AppendUvarint(w.b, uint64(len(k)))
	w.b = append(w.b, k...)
}

func (w *walWriter) sequence(bucket byte, n uint64) {
	w.b = append(w.b, walSequence, bucket)
	w.b = binary.AppendUvarint(w.b, n)
}

// walEntry is one decoded entry; key and value point into the payload.
type walEntry struct {
	kind, bucket byte
	key, value   []byte
	seq          uint64
}

// walEntries calls fn with each entry of payload.
func walEntries(payload []byte, fn func(walEntry) error) error {
	for len(payload) > 0 {
		if len(payload) < 2 {
			return errWALCorrupt
		}
		e := walEntry{kind: payload[0], bucket: payload[1]}
		payload = payload[2:]
		var ok bool
		switch e.kind {
		case walPut:
			if e.key, payload, ok = walBytes(payload); !ok {
				return errWALCorrupt
			}
			if e.value, payload, ok = walBytes(payload); !ok {
				return errWALCorrupt
			}
		case walDelete:
			if e.key, payload, ok = walBytes(payload); !ok {
				return errWALCorrupt
			}
		case walSequence:
			n, m := binary.Uvarint(payload)
			if m <= 0 {
				return errWALCorrupt
			}
			e.seq, payload = n, payload[m:]
		default:
			return errWALCorrupt
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func walBytes(b []byte) (v, rest []byte, ok bool) {
	n, m := binary.Uvarint(b)
	if m <= 0 || uint64(len(b)-m) < n {
		return nil, nil, false
	}
	return b[m : m+int(n)], b[m+int(n):], true
}
