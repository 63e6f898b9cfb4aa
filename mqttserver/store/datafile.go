package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SetAsideFlag is the flag that moves a damaged data file aside and starts with an empty one.
const SetAsideFlag = "-data-set-aside"

// damagedError is a data file that cannot be used as it is.
type damagedError struct {
	path    string
	problem string // what is wrong, e.g. "is empty (0 bytes)"
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("data file %s %s: run again with %s to move it aside and start with no retained messages or stored sessions",
		e.path, e.problem, SetAsideFlag)
}

// openChecked opens the data file and reads every record in it once, so that damage is found
// now and not while serving. bbolt panics rather than returns an error on some damaged files,
// and a file shorter than its pages faults on the memory map: the open and the read run on a
// goroutine of their own that turns a panic or a fault into a damagedError.
//
// An empty file is damage too: bbolt would start anew in it, and every retained message and
// session would be gone without a word. bbolt writes its first pages when it creates a file.
func openChecked(path string) (*bbolt.DB, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
		return nil, &damagedError{path, "is empty (0 bytes)"}
	}
	type result struct {
		db  *bbolt.DB
		err error
	}
	done := make(chan result, 1)
	go func() {
		var db *bbolt.DB
		defer func() {
			if p := recover(); p != nil {
				// The file stays open and locked: bbolt's state is unknown after a panic, and
				// closing it could panic again. moveAside renames it all the same.
				problem := strings.Join(strings.Fields(fmt.Sprint(p)), " ") // one line
				done <- result{nil, &damagedError{path, "is damaged (" + problem + ")"}}
			}
		}()
		debug.SetPanicOnFault(true) // only this goroutine, which ends here
		db, err := openAndRead(path)
		done <- result{db, err}
	}()
	r := <-done
	return r.db, r.err
}

// openAndRead checks the file and opens it: first read-only (which reads no more than the
// meta pages) to compare its size with what its pages need and to decode every record, then
// for writing (which also reads the free-page list), with bbolt's own consistency check.
func openAndRead(path string) (*bbolt.DB, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		db, err := open(path, false) // a new file
		if fi, statErr := os.Stat(path); err != nil && !errors.Is(err, bolterrors.ErrTimeout) && statErr == nil && fi.Size() == 0 {
			// bbolt created it and could not write its first pages (a full disk): left behind,
			// the empty file would stop the next start as damaged.
			_ = os.Remove(path)
		}
		return db, err
	}
	if err := checkMetaPages(path); err != nil {
		return nil, err
	}
	db, err := open(path, true)
	if err != nil {
		return nil, err
	}
	err = db.View(func(tx *bbolt.Tx) error {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("data file %s: %w", path, err)
		}
		if fi.Size() < tx.Size() {
			return &damagedError{path, fmt.Sprintf("is cut short (%d bytes; its pages need %d)", fi.Size(), tx.Size())}
		}
		// Every bucket, not just ours: bbolt's Check below walks them all, outside this guard.
		err = tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if !bytes.Equal(name, bucket) {
				return fmt.Errorf("a bucket %q this broker never writes", name)
			}
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					return fmt.Errorf("a nested bucket %q this broker never writes", k)
				}
				return decodeRecord(k, v)
			})
		})
		if err != nil {
			return &damagedError{path, fmt.Sprintf("is damaged (%v)", err)}
		}
		return nil
	})
	_ = db.Close()
	if err != nil {
		return nil, err
	}
	if db, err = open(path, false); err != nil {
		return nil, err
	}
	err = db.View(func(tx *bbolt.Tx) error {
		// Check runs on a goroutine of its own; the pages it reads were all read above. Its
		// channel is drained: the goroutine reads the transaction until it ends.
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = &damagedError{path, fmt.Sprintf("is damaged (%v)", err)}
			}
		}
		return first
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// bbolt's meta page layout (go.etcd.io/bbolt internal/common, Page and Meta), in the byte order
// of the machine that wrote it.
const (
	pageHeaderSize = 16         // id uint64, flags uint16, count uint16, overflow uint32
	metaSize       = 64         // magic, version, page size, flags (uint32 each), root bucket (16), free list, high water mark, txid, checksum (uint64 each)
	metaSummed     = 56         // the checksum is FNV-64a over the fields before it
	metaMagic      = 0xED0CDAED // common.Magic
	metaVersion    = 2          // common.Version
	metaPageFlag   = 0x04       // common.MetaPageFlag
)

// checkMetaPages checks both of bbolt's meta pages (pages 0 and 1), which it writes in turn, one
// per transaction. bbolt uses the one with the higher transaction id if it is valid, and else
// falls back to the other without a word: a damaged newest page takes the file back one
// transaction, and with it messages already acknowledged. Once one page is damaged, its
// transaction id cannot be trusted, so which of the two was the newest cannot be told: either
// one damaged is damage. (A damaged page header also made bbolt's Check panic where it cannot
// be recovered.)
func checkMetaPages(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("data file %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("data file %s: %w", path, err)
	}
	buf := make([]byte, pageHeaderSize+metaSize)
	pageSize := int64(0) // read from page 0
	for n := range int64(2) {
		if fi.Size() < n*pageSize+int64(len(buf)) {
			return &damagedError{path, fmt.Sprintf("is cut short (%d bytes; meta page %d is not all there)", fi.Size(), n)}
		}
		if _, err := f.ReadAt(buf, n*pageSize); err != nil {
			return fmt.Errorf("data file %s: %w", path, err)
		}
		e := binary.NativeEndian
		id, flags, meta := e.Uint64(buf), e.Uint16(buf[8:]), buf[pageHeaderSize:]
		sum := fnv.New64a()
		sum.Write(meta[:metaSummed])
		if id != uint64(n) || flags != metaPageFlag || e.Uint32(meta) != metaMagic ||
			e.Uint32(meta[4:]) != metaVersion || e.Uint64(meta[metaSummed:]) != sum.Sum64() {
			return &damagedError{path, fmt.Sprintf("is damaged (meta page %d of 2 is not valid; "+
				"bbolt would go back to the other, which may be older and lack acknowledged messages)", n)}
		}
		if n == 0 {
			pageSize = int64(e.Uint32(meta[8:]))
		}
	}
	return nil
}

// open opens the file with bbolt, which creates it if it is missing.
func open(path string, readOnly bool) (*bbolt.DB, error) {
	// bbolt locks the file; a second broker on the same directory fails fast instead of waiting.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: readOnly})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("data file %s is in use by another mqttserver", path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, &damagedError{path, fmt.Sprintf("is damaged (%v)", err)}
	case err != nil:
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	return db, nil
}

// decodeRecord decodes one record as the kind its key names.
func decodeRecord(k, v []byte) error {
	var err error
	switch {
	case bytes.HasPrefix(k, []byte(storage.ClientKey+"_")):
		err = new(storage.Client).UnmarshalBinary(v)
	case bytes.HasPrefix(k, []byte(storage.SubscriptionKey+"_")):
		err = new(storage.Subscription).UnmarshalBinary(v)
	case bytes.HasPrefix(k, []byte(storage.InflightKey+"_")), bytes.HasPrefix(k, []byte(storage.RetainedKey+"_")):
		err = new(storage.Message).UnmarshalBinary(v)
	case bytes.HasPrefix(k, []byte(storage.SysInfoKey)):
		err = new(storage.SystemInfo).UnmarshalBinary(v)
	default:
		return fmt.Errorf("unknown record %q", k[:min(len(k), 64)])
	}
	if err != nil {
		return fmt.Errorf("record %q: %w", k[:min(len(k), 64)], err)
	}
	return nil
}

// moveAside renames a damaged data file (-data-set-aside), says so, and opens a new one.
func (s *Store) moveAside(damaged *damagedError) (*bbolt.DB, error) {
	aside := fmt.Sprintf("%s.damaged-%s", s.path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(s.path, aside); err != nil {
		return nil, fmt.Errorf("%s: move the data file aside: %w", damaged.problem, err)
	}
	s.log.Warn("data file damaged: moved aside, starting with no retained messages or stored sessions",
		"file", s.path, "problem", damaged.problem, "moved_to", aside,
		"lost", "every retained message and stored session in it")
	db, err := openChecked(s.path)
	if err != nil {
		return nil, fmt.Errorf("after moving the damaged data file aside: %w", err)
	}
	return db, nil
}
