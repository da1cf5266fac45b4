package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/spmesh/spmesh/internal/testutil"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// envMain makes the test binary run the demo instead of the tests: the
// end-to-end tests start it as a real process, and it starts its roles by
// re-executing itself (the environment is inherited), exactly as the
// installed binary does.
const envMain = "IMAGEPIPELINE_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	testutil.VerifyTestMain(m)
}

// running is a demo process started by a test.
type running struct {
	*testutil.Child
	out     *testutil.Buffer // its stdout and stderr
	summary string           // its -summary file (startDemo)
}

// startProc runs the demo (this test binary in main mode) as a process
// with args; it is killed at the end of the test.
func startProc(t *testing.T, args ...string) *running {
	t.Helper()
	r := &running{out: &testutil.Buffer{}}
	cmd := testutil.Command([]string{envMain + "=1"}, testutil.Self(), args...)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	r.Child = testutil.Start(t, cmd)
	return r
}

// wait waits up to timeout for the process to exit and returns its exit
// error; past timeout the test fails.
func (r *running) wait(t *testing.T, what string, timeout time.Duration) error {
	t.Helper()
	select {
	case <-r.Done():
	case <-time.After(timeout):
		t.Fatalf("%s: still running after %v; output:\n%s", what, timeout, r.out.String())
	}
	return r.Err()
}

// demo runs the demo as a process with args plus an output directory and a
// summary file, and returns the summary and the combined output.
func demo(t *testing.T, args ...string) (Summary, string) {
	t.Helper()
	dir := t.TempDir()
	sumPath := filepath.Join(dir, "summary.json")
	args = append(args, "-out", filepath.Join(dir, "out"), "-summary", sumPath)
	r := startProc(t, args...)
	what := fmt.Sprintf("demo %v", args)
	if err := r.wait(t, what, 90*time.Second); err != nil {
		t.Fatalf("%s: got %v, want exit status 0; output:\n%s", what, err, r.out.String())
	}
	out := r.out
	data, err := os.ReadFile(sumPath)
	if err != nil {
		t.Fatalf("summary: %v; output:\n%s", err, out.String())
	}
	var sum Summary
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	return sum, out.String()
}

// checkOutput checks that the run holds one thumbnail of the right size and
// one grayscale copy per synthetic image (of -size 320, -thumb 80), and a
// contact sheet that decodes as a PNG.
func checkOutput(t *testing.T, sum Summary, n int) {
	t.Helper()
	if sum.Total != n || sum.Processed != n || len(sum.Missing) != 0 {
		t.Fatalf("summary: got total %d, processed %d, missing %v, want %d, %d, none", sum.Total, sum.Processed, sum.Missing, n, n)
	}
	thumbs, err := filepath.Glob(filepath.Join(sum.Dir, "thumbs", "*.png"))
	if err != nil || len(thumbs) != n {
		t.Fatalf("thumbnails: got %d (%v), want %d", len(thumbs), err, n)
	}
	grays, _ := filepath.Glob(filepath.Join(sum.Dir, "gray", "*.jpg"))
	if len(grays) != n {
		t.Fatalf("grayscale copies: got %d, want %d", len(grays), n)
	}
	// Sources cycle through 320x240, 240x320 and 400x225.
	wants := []image.Point{{80, 60}, {60, 80}, {80, 45}}
	for i := 1; i <= n; i++ {
		img, err := readPNG(filepath.Join(sum.Dir, "thumbs", fmt.Sprintf("img-%04d.png", i)))
		if err != nil {
			t.Fatalf("thumbnail %d: %v", i, err)
		}
		if got, want := img.Bounds().Size(), wants[(i-1)%3]; got != want {
			t.Errorf("thumbnail %d: got %v, want %v", i, got, want)
		}
	}
	f, err := os.Open(sum.Sheet)
	if err != nil {
		t.Fatalf("contact sheet: %v", err)
	}
	defer f.Close()
	sheet, err := png.Decode(f)
	if err != nil {
		t.Fatalf("contact sheet %s: got %v, want a PNG", sum.Sheet, err)
	}
	if b := sheet.Bounds(); b.Dx() < 80 || b.Dy() < 80 {
		t.Fatalf("contact sheet: got %v, want at least one 80px tile", b)
	}
}

// TestDemo runs the whole demo with its defaults but fewer images: a sink, a
// producer and 3 workers as processes, wired by name through discovery.
func TestDemo(t *testing.T) {
	const n = 12
	sum, out := demo(t, "-n", fmt.Sprint(n), "-size", "320", "-thumb", "80", "-work", "20ms", "-metrics", "127.0.0.1:0")
	checkOutput(t, sum, n)
	total := 0
	for w, c := range sum.PerWorker {
		total += c
		// Each worker that took jobs has a mean job time, from the
		// producer's per-peer stats, of at least its -work.
		if d := sum.ServiceTimes[w]; c > 0 && d < 20*time.Millisecond {
			t.Errorf("service time of %s (%d images): got %v, want at least 20ms (all: %v)", w, c, d, sum.ServiceTimes)
		}
	}
	if total != n {
		t.Fatalf("per-worker counts %v: got a sum of %d, want %d", sum.PerWorker, total, n)
	}
	for _, want := range []string{"started worker-3", "imagepipeline done", "contact sheet", "service time  worker-"} {
		if !strings.Contains(out, want) {
			t.Errorf("output: got\n%s\nwant it to contain %q", out, want)
		}
	}
}

// TestDemoDir runs the demo on a directory: images of several formats, an
// unreadable one (reported as failed, not retried forever) and a file that
// is not an image (ignored).
func TestDemoDir(t *testing.T) {
	in := t.TempDir()
	jpg, _ := encodeJPEG(syntheticImage(1, 320)) // 320x240
	pngData, _ := encodePNG(syntheticImage(2, 320))
	for name, data := range map[string][]byte{
		"a.jpg": jpg, "b.png": pngData, "broken.jpg": []byte("not a jpeg"), "notes.txt": []byte("hello"),
	} {
		if err := os.WriteFile(filepath.Join(in, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum, out := demo(t, "-in", in, "-thumb", "80", "-work", "0s", "-workers", "2")
	if sum.Total != 3 || sum.Processed != 3 || len(sum.Missing) != 0 {
		t.Fatalf("summary: got total %d, processed %d, missing %v, want 3, 3, none; output:\n%s", sum.Total, sum.Processed, sum.Missing, out)
	}
	if _, ok := sum.Failed["broken"]; !ok || len(sum.Failed) != 1 {
		t.Fatalf("failed: got %v, want broken only", sum.Failed)
	}
	for id, want := range map[string]image.Point{"a": {80, 60}, "b": {60, 80}} {
		img, err := readPNG(filepath.Join(sum.Dir, "thumbs", id+".png"))
		if err != nil {
			t.Fatalf("thumbnail %s: %v", id, err)
		}
		if got := img.Bounds().Size(); got != want {
			t.Errorf("thumbnail %s: got %v, want %v", id, got, want)
		}
	}
	if _, err := readPNG(sum.Sheet); err != nil {
		t.Fatalf("contact sheet: %v", err)
	}
}

// TestChaos kills a worker and the sink mid-run (SIGKILL) and starts new
// ones: every image still ends up stored, and the late worker takes jobs.
func TestChaos(t *testing.T) {
	const n = 48
	sum, out := demo(t, "-n", fmt.Sprint(n), "-size", "320", "-thumb", "80", "-work", "400ms", "-chaos", "-chaos-sink")
	checkOutput(t, sum, n)
	if !slices.Contains(sum.Killed, "worker-2") || !slices.Contains(sum.Killed, "sink") {
		t.Fatalf("killed: got %v, want worker-2 and sink", sum.Killed)
	}
	// The late worker joined the mesh and was found by name: it answered the
	// producer's load survey. How many jobs it gets is up to the producer's
	// scheduling (mangos REQ favours the worker that answered last), so it
	// is reported, not asserted.
	if !slices.Contains(sum.Answered, "worker-4") {
		t.Errorf("late worker-4: got answers to the load survey from %v, want worker-4 among them; output:\n%s", sum.Answered, out)
	}
	t.Logf("per worker: %v (worker-4 joined late)", sum.PerWorker)
	if sum.Restored == 0 {
		t.Errorf("restarted sink: got %d images restored from its index, want some", sum.Restored)
	}
}

func TestFitSize(t *testing.T) {
	for _, c := range []struct{ w, h, box, ww, wh int }{
		{640, 480, 160, 160, 120},
		{480, 640, 160, 120, 160},
		{800, 450, 160, 160, 90},
		{100, 50, 160, 100, 50}, // never enlarged
		{5000, 1, 160, 160, 1},  // never below a pixel
	} {
		if w, h := fitSize(c.w, c.h, c.box); w != c.ww || h != c.wh {
			t.Errorf("fitSize(%d, %d, %d): got %dx%d, want %dx%d", c.w, c.h, c.box, w, h, c.ww, c.wh)
		}
	}
}

func TestProcess(t *testing.T) {
	data, err := encodeJPEG(syntheticImage(2, 320)) // 240x320
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		transform string
		variants  []string
	}{{"gray", []string{"gray"}}, {"ladder", []string{"half", "quarter", "eighth"}}} {
		r, err := process(&ImageJob{Run: "r", ID: "img-0002", Data: data}, 80, c.transform)
		if err != nil {
			t.Fatal(err)
		}
		thumb, err := png.Decode(bytes.NewReader(r.Thumb))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := thumb.Bounds().Size(), image.Pt(60, 80); got != want {
			t.Errorf("%s: thumbnail: got %v, want %v", c.transform, got, want)
		}
		var names []string
		for _, v := range r.Variants {
			names = append(names, v.Name)
			img, _, err := image.Decode(bytes.NewReader(v.Data))
			if err != nil {
				t.Fatalf("%s: variant %s: %v", c.transform, v.Name, err)
			}
			if v.Name == "quarter" && img.Bounds().Size() != image.Pt(60, 80) {
				t.Errorf("quarter: got %v, want 60x80", img.Bounds().Size())
			}
			if v.Name == "gray" && img.Bounds().Size() != image.Pt(240, 320) {
				t.Errorf("gray: got %v, want 240x320", img.Bounds().Size())
			}
		}
		if !slices.Equal(names, c.variants) {
			t.Errorf("%s: variants: got %v, want %v", c.transform, names, c.variants)
		}
	}
	if _, err := process(&ImageJob{ID: "x", Data: []byte("not an image")}, 160, "gray"); err == nil {
		t.Error("garbage image: got no error, want one")
	}
}

// TestStoreRestart stores results, counts a duplicate, then opens the same
// directory again as a restarted sink would: what was stored is still there.
func TestStoreRestart(t *testing.T) {
	dir := t.TempDir()
	thumb, _ := encodePNG(image.NewRGBA(image.Rect(0, 0, 16, 12)))
	res := func(id, worker string) *Result {
		return &Result{Run: "run-1", ID: id, Worker: worker, Thumb: thumb,
			Variants: []Variant{{Name: "gray", Ext: ".jpg", Data: []byte("jpeg")}}}
	}
	s, err := newStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Result{res("a", "w1"), res("b", "w2"), res("a", "w2")} {
		if _, err := s.put(r); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := s.status("")
	if st.Stored != 2 || st.Duplicates != 1 || st.PerWorker["w1"] != 1 || st.PerWorker["w2"] != 1 {
		t.Fatalf("status: got %+v, want 2 stored, 1 duplicate, 1 each", st)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}

	s, err = newStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if dup, err := s.put(res("b", "w3")); err != nil || !dup {
		t.Fatalf("put again after restart: got dup %v, %v, want a duplicate", dup, err)
	}
	fin, err := s.finish("run-1", []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if fin.Stored != 2 || fin.Restored != 2 || !slices.Equal(fin.Missing, []string{"c"}) || !fin.Finished {
		t.Fatalf("finish: got %+v, want 2 stored, 2 restored, c missing", fin)
	}
	if _, err := readPNG(fin.Sheet); err != nil {
		t.Fatalf("contact sheet: %v", err)
	}
	if dup, err := s.put(&Result{Run: "run-1", ID: "c", Worker: "w1", Err: "unexpected EOF"}); err != nil || dup {
		t.Fatalf("failed image: got dup %v, %v, want stored", dup, err)
	}
	if st, _ := s.status("run-1"); st.Stored != 3 || st.Failed["c"] != "unexpected EOF" {
		t.Fatalf("status: got %d stored, failed %v, want 3 and c", st.Stored, st.Failed)
	}
	if _, err := s.put(&Result{Run: "../x", ID: "a"}); err == nil {
		t.Error("run id ../x: got no error, want one")
	}
	if _, err := s.put(&Result{Run: "run-1", ID: "../a"}); err == nil {
		t.Error("image id ../a: got no error, want one")
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine(15, 60, 12.5, map[string]int{"worker-2": 7, "worker-1": 8}, map[string]Load{"worker-1": {InFlight: 2}}, 20)
	want := "[#####...............]  15/60  12.5 img/s  worker-1:8(2 busy) worker-2:7"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-role", "boss"}, {"-transform", "sepia"}, {"-n", "0"}, {"-thumb", "4"}, {"-size", "8"}, {"-run", "../x"}, {"-pki", "/tmp"}} {
		var out bytes.Buffer
		if code := run(args, &out, &out); code != 2 {
			t.Errorf("%v: got exit code %d, want 2 (%s)", args, code, out.String())
		}
	}
}

// TestDemoSecure runs the demo with -secure: the whole pipeline over mutual
// TLS with a throwaway CA, plaintext refused and node names verified. Every
// endpoint advertised during the run is tls+tcp://, and the supervisor's
// own sockets saw no refused endpoint and no failed handshake.
func TestDemoSecure(t *testing.T) {
	const n = 9
	sum, out := demo(t, "-secure", "-n", fmt.Sprint(n), "-size", "320", "-thumb", "80", "-work", "20ms")
	checkOutput(t, sum, n)
	if !sum.Secure {
		t.Fatalf("summary: got Secure false, want true; output:\n%s", out)
	}
	services := map[string]bool{}
	for _, ep := range sum.Endpoints {
		service, addr, _ := strings.Cut(ep, "@")
		if !strings.HasPrefix(addr, "tls+tcp://") {
			t.Errorf("endpoint %s: got %s, want tls+tcp://", service, addr)
		}
		services[service] = true
	}
	if len(services) != len(demoEndpoints) {
		t.Errorf("got endpoints of %v, want one of each of the %d listening services", services, len(demoEndpoints))
	}
	for i, st := range sum.Sockets {
		if st.EndpointsRefused != 0 || st.HandshakeErrors != 0 || st.Received == 0 {
			t.Errorf("supervisor socket %d: got %+v, want messages received, no refusal, no failed handshake", i, st)
		}
	}
	if !strings.Contains(out, "0 of them plaintext") {
		t.Errorf("output: got\n%s\nwant the security line", out)
	}
}

// TestDemoChaosProducer kills the producer mid-run (SIGKILL) and starts a
// new one on the same outbox: every image is stored, the new producer
// recovered the jobs the killed one had in flight (the workers take 300 ms
// an image and the producer keeps -window 8 in flight, more than the 6 the
// workers run at once, so at the kill some are always unacked), and it
// resumed after the images the killed one had submitted.
func TestDemoChaosProducer(t *testing.T) {
	const n = 36
	sum, out := demo(t, "-n", fmt.Sprint(n), "-size", "320", "-thumb", "80", "-work", "300ms", "-chaos-producer")
	checkOutput(t, sum, n)
	if !slices.Contains(sum.Killed, "producer") || !slices.Contains(sum.Started, "producer-2") {
		t.Fatalf("killed %v, started %v: want producer killed and producer-2 started; output:\n%s", sum.Killed, sum.Started, out)
	}
	if sum.ProducerRecovered == 0 {
		t.Errorf("restarted producer: got 0 jobs recovered from the outbox, want some; output:\n%s", out)
	}
	// The kill comes once a third is stored; the killed producer had
	// submitted those plus its window, never all (36 > 12 + 8).
	if sum.ProducerResumed < n/3 || sum.ProducerResumed >= n {
		t.Errorf("restarted producer: resumed after %d images, want %d to %d", sum.ProducerResumed, n/3, n-1)
	}
	if !strings.Contains(out, "recovered") {
		t.Errorf("output: got\n%s\nwant the producer line of the summary", out)
	}
	t.Logf("recovered %d, resumed after %d, duplicates %d", sum.ProducerRecovered, sum.ProducerResumed, sum.Duplicates)
}

// TestProducerProgress: the progress kept next to the outbox reads back,
// and a damaged file is an error (the producer then starts from the first
// image: duplicates, not losses).
func TestProducerProgress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	if _, err := loadProgress(path); err == nil {
		t.Fatal("no progress file: got no error, want one")
	}
	want := producerProgress{Run: "run-1", Submitted: 7, Recovered: 3, ServiceTimes: map[string]time.Duration{"worker-1": time.Second}}
	if err := saveProgress(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err := loadProgress(path); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v, want %+v", got, err, want)
	}
	if err := os.WriteFile(path+".progress", []byte("{\"Run\": \"run-1\", \"Subm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadProgress(path); err == nil {
		t.Fatal("torn progress file: got no error, want one")
	}
}
