package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// store is the sink's output directory: one subdirectory per run, holding
// thumbs/<id>.png, one directory per variant, an index of what is stored
// (index.jsonl, one line per image, appended after the image's files are in
// place) and the contact sheet. The index is what makes a restarted sink
// whole again: it is read back the first time a run is touched, so images
// stored before a restart count as stored, and a result redelivered after
// the restart counts as a duplicate.
type store struct {
	root string

	mu     sync.Mutex
	runs   map[string]*runState
	latest string // the run that last stored something
}

// runState is what the sink knows of one run.
type runState struct {
	dir       string
	index     *os.File          // append-only index
	have      map[string]string // id -> worker that made it
	order     []string          // ids in the order stored
	perWorker map[string]int
	failed    map[string]string // id -> why it could not be processed
	dups      int
	restored  int
	sheet     string
	finished  bool
	missing   []string
}

// finishRecord is finished.json: the outcome of finishing a run, kept so
// that a restarted sink still reports it.
type finishRecord struct {
	Missing []string `json:"missing"`
	Sheet   string   `json:"sheet"`
}

// indexLine is one line of index.jsonl.
type indexLine struct {
	ID     string `json:"id"`
	Worker string `json:"worker"`
	Error  string `json:"error,omitempty"` // the image could not be processed
}

func newStore(root string) (*store, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	return &store{root: root, runs: map[string]*runState{}}, nil
}

// runLocked returns the state of run, loading its index on first use.
func (s *store) runLocked(run string) (*runState, error) {
	if rs, ok := s.runs[run]; ok {
		return rs, nil
	}
	if run == "" || imageID(run) != run {
		return nil, fmt.Errorf("bad run id %q", run)
	}
	rs := &runState{dir: filepath.Join(s.root, run), have: map[string]string{}, perWorker: map[string]int{}, failed: map[string]string{}}
	if err := os.MkdirAll(filepath.Join(rs.dir, "thumbs"), 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(rs.dir, "index.jsonl")
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l indexLine
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.ID == "" {
				continue // a line cut short by a crash: its image will be redelivered
			}
			if _, dup := rs.have[l.ID]; !dup {
				rs.addLocked(l)
				rs.restored++
			}
		}
		f.Close()
	}
	if data, err := os.ReadFile(filepath.Join(rs.dir, "finished.json")); err == nil {
		var fin finishRecord
		if json.Unmarshal(data, &fin) == nil {
			rs.finished, rs.missing, rs.sheet = true, fin.Missing, fin.Sheet
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	rs.index = f
	s.runs[run] = rs
	return rs, nil
}

// put stores one result and reports whether the image was already stored
// (a duplicate: at-least-once delivery redelivered it). It is safe for
// concurrent use and idempotent: the files are written under temporary
// names and renamed, then the index line is appended.
func (s *store) put(r *Result) (dup bool, err error) {
	if imageID(r.ID) != r.ID {
		return false, fmt.Errorf("bad image id %q", r.ID)
	}
	s.mu.Lock()
	rs, err := s.runLocked(r.Run)
	if err == nil {
		_, dup = rs.have[r.ID]
		if dup {
			rs.dups++
		}
	}
	s.mu.Unlock()
	if err != nil || dup {
		return dup, err
	}

	if r.Err == "" {
		if err := writeFile(filepath.Join(rs.dir, "thumbs", r.ID+".png"), r.Thumb); err != nil {
			return false, err
		}
	}
	for _, v := range r.Variants {
		if imageID(v.Name) != v.Name || (v.Ext != ".png" && v.Ext != ".jpg") {
			return false, fmt.Errorf("bad variant %q%q", v.Name, v.Ext)
		}
		if err := writeFile(filepath.Join(rs.dir, v.Name, r.ID+v.Ext), v.Data); err != nil {
			return false, err
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := rs.have[r.ID]; dup { // a concurrent copy got there first
		rs.dups++
		return true, nil
	}
	l := indexLine{ID: r.ID, Worker: r.Worker, Error: r.Err}
	line, _ := json.Marshal(l)
	if _, err := rs.index.Write(append(line, '\n')); err != nil {
		return false, err
	}
	rs.addLocked(l)
	s.latest = r.Run
	return false, nil
}

// addLocked records one image's result.
func (rs *runState) addLocked(l indexLine) {
	rs.have[l.ID] = l.Worker
	rs.order = append(rs.order, l.ID)
	rs.perWorker[l.Worker]++
	if l.Error != "" {
		rs.failed[l.ID] = l.Error
	}
}

// writeFile writes data to path through a temporary file and a rename, so
// that a reader (or a crash) never sees half a file.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// status reports what run holds ("" for the latest run).
func (s *store) status(run string) (SinkStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if run == "" {
		run = s.latest
	}
	if run == "" {
		return SinkStatus{PerWorker: map[string]int{}}, nil
	}
	rs, err := s.runLocked(run)
	if err != nil {
		return SinkStatus{}, err
	}
	return rs.statusLocked(run), nil
}

func (rs *runState) statusLocked(run string) SinkStatus {
	return SinkStatus{
		Run:        run,
		Dir:        rs.dir,
		Stored:     len(rs.have),
		Duplicates: rs.dups,
		PerWorker:  maps.Clone(rs.perWorker),
		Failed:     maps.Clone(rs.failed),
		Sheet:      rs.sheet,
		Restored:   rs.restored,
		Finished:   rs.finished,
		Missing:    slices.Clone(rs.missing),
	}
}

// finish checks run against the ids it must hold and builds its contact
// sheet (of the expected images in order; of every stored image in the order
// stored when expect is empty).
func (s *store) finish(run string, expect []string) (SinkStatus, error) {
	s.mu.Lock()
	rs, err := s.runLocked(run)
	if err != nil {
		s.mu.Unlock()
		return SinkStatus{}, err
	}
	ids := expect
	if len(ids) == 0 {
		ids = slices.Clone(rs.order)
	}
	var missing []string
	var cells []sheetCell
	workers := map[string]string{}
	for _, id := range ids {
		w, ok := rs.have[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		if _, failed := rs.failed[id]; !failed {
			workers[id] = w
		}
	}
	s.mu.Unlock()

	box := 64 // the tile size: the largest thumbnail side
	for _, id := range ids {
		w, ok := workers[id]
		if !ok {
			continue
		}
		img, err := readPNG(filepath.Join(rs.dir, "thumbs", id+".png"))
		if err != nil {
			return SinkStatus{}, err
		}
		cells = append(cells, sheetCell{Thumb: img, Label: id, Worker: w})
		box = max(box, img.Bounds().Dx(), img.Bounds().Dy())
	}
	sheet := filepath.Join(rs.dir, "contact-sheet.png")
	data, err := encodePNG(contactSheet(cells, box, 10))
	if err == nil {
		err = writeFile(sheet, data)
	}
	if err == nil {
		fin, _ := json.Marshal(finishRecord{Missing: missing, Sheet: sheet})
		err = writeFile(filepath.Join(rs.dir, "finished.json"), fin)
	}
	if err != nil {
		return SinkStatus{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	rs.sheet, rs.finished, rs.missing = sheet, true, missing
	return rs.statusLocked(run), nil
}

func readPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return png.Decode(f)
}

// close closes the run indexes.
func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, rs := range s.runs {
		errs = append(errs, rs.index.Close())
	}
	return errors.Join(errs...)
}
