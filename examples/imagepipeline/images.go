package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // decoders for -in directories
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	_ "golang.org/x/image/bmp" // more decoders for -in directories
	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// syntheticSizes are the sizes generated images cycle through (for -size
// 640), so that thumbnails of landscape, portrait and wide images all show
// up.
var syntheticSizes = []image.Point{{640, 480}, {480, 640}, {800, 450}}

// syntheticSize is the size of synthetic image i (from 1) for a -size of
// base: syntheticSizes scaled by base/640.
func syntheticSize(i, base int) image.Point {
	sz := syntheticSizes[(i-1)%len(syntheticSizes)]
	return image.Pt(max(1, sz.X*base/640), max(1, sz.Y*base/640))
}

// syntheticImage draws test image number i (from 1) with a -size of base:
// a colour gradient that changes with i, a few discs, and the number itself
// in large digits.
func syntheticImage(i, base int) image.Image {
	sz := syntheticSize(i, base)
	img := image.NewRGBA(image.Rect(0, 0, sz.X, sz.Y))
	// The gradient runs along the diagonal: one colour per x+y.
	hue := float64(i*47%360) / 360
	diag := make([]color.RGBA, sz.X+sz.Y)
	for d := range diag {
		t := float64(d) / float64(len(diag))
		diag[d] = hsv(hue+0.25*t, 0.55+0.3*t, 0.95-0.35*t)
	}
	for y := range sz.Y {
		row := img.Pix[y*img.Stride:]
		for x := range sz.X {
			c := diag[x+y]
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = c.R, c.G, c.B, c.A
		}
	}
	// Discs whose count and placement depend on i.
	for k := range 1 + i%5 {
		cx, cy := (k*173+i*61)%sz.X, (k*97+i*37)%sz.Y
		r := (30 + (k*29+i*11)%70) * base / 640
		disc := image.NewUniform(hsv(hue+0.5+float64(k)/10, 0.7, 0.9))
		for y := max(0, cy-r); y < min(sz.Y, cy+r); y++ {
			dx := int(math.Sqrt(float64(r*r - (y-cy)*(y-cy))))
			row := image.Rect(max(0, cx-dx), y, min(sz.X, cx+dx), y+1)
			draw.Draw(img, row, disc, image.Point{}, draw.Src)
		}
	}
	// The number, drawn small and scaled up so it reads on a thumbnail.
	label := fmt.Sprint(i)
	small := image.NewRGBA(image.Rect(0, 0, 7*len(label)+2, 15))
	d := font.Drawer{Dst: small, Src: image.White, Face: basicfont.Face7x13, Dot: fixed.P(1, 12)}
	d.DrawString(label)
	scale := max(1, min(sz.X/2/small.Bounds().Dx(), sz.Y/2/small.Bounds().Dy()))
	dw, dh := small.Bounds().Dx()*scale, small.Bounds().Dy()*scale
	at := image.Rect((sz.X-dw)/2, (sz.Y-dh)/2, (sz.X+dw)/2, (sz.Y+dh)/2)
	draw.NearestNeighbor.Scale(img, at, small, small.Bounds(), draw.Over, nil)
	return img
}

// hsv converts hue (wrapped to [0,1)), saturation and value to an opaque
// colour.
func hsv(h, s, v float64) color.RGBA {
	h = (h - math.Floor(h)) * 6
	c := v * s
	x := c * (1 - math.Abs(math.Mod(h, 2)-1))
	var r, g, b float64
	switch int(h) {
	case 0:
		r, g = c, x
	case 1:
		r, g = x, c
	case 2:
		g, b = c, x
	case 3:
		g, b = x, c
	case 4:
		r, b = x, c
	default:
		r, b = c, x
	}
	m := v - c
	u8 := func(f float64) uint8 { return uint8(math.Round((f + m) * 255)) }
	return color.RGBA{u8(r), u8(g), u8(b), 255}
}

// encodeJPEG encodes img as a JPEG of good quality.
func encodeJPEG(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encodePNG encodes img as a PNG, favouring speed over size.
func encodePNG(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// imageExts are the file name extensions a -in directory is scanned for.
var imageExts = []string{".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}

// listImages returns the image files directly inside dir, sorted by name.
func listImages(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && slices.Contains(imageExts, strings.ToLower(filepath.Ext(e.Name()))) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// imageID turns a file name into an id safe to use in output file names.
func imageID(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	id := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, base)
	if id == "" {
		id = "_"
	}
	return id
}

// fitSize is the size of a w x h image scaled to fit a box x box square,
// keeping its aspect ratio (never below 1 pixel, never enlarged).
func fitSize(w, h, box int) (int, int) {
	if w <= box && h <= box {
		return w, h
	}
	if w >= h {
		return box, max(1, int(math.Round(float64(h)*float64(box)/float64(w))))
	}
	return max(1, int(math.Round(float64(w)*float64(box)/float64(h)))), box
}

// thumbnail scales src to fit a box x box square with a high-quality
// (Catmull-Rom) filter.
func thumbnail(src image.Image, box int) *image.RGBA {
	b := src.Bounds()
	w, h := fitSize(b.Dx(), b.Dy(), box)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}

// grayscale converts src to 8-bit gray at full size. A JPEG (Y'CbCr)
// already holds its gray image, the luma plane: that is copied as is.
func grayscale(src image.Image) *image.Gray {
	b := src.Bounds()
	dst := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	if yc, ok := src.(*image.YCbCr); ok {
		for y := range b.Dy() {
			i := yc.YOffset(b.Min.X, b.Min.Y+y)
			copy(dst.Pix[y*dst.Stride:y*dst.Stride+b.Dx()], yc.Y[i:i+b.Dx()])
		}
		return dst
	}
	draw.Copy(dst, image.Point{}, src, b, draw.Src, nil)
	return dst
}

// ladder scales src to 1/2, 1/4 and 1/8 of its size, each step from the
// previous one (the cheap way to build a resize ladder), with a bilinear
// filter.
func ladder(src image.Image) []image.Image {
	var out []image.Image
	prev := src
	for range 3 {
		b := prev.Bounds()
		dst := image.NewRGBA(image.Rect(0, 0, max(1, b.Dx()/2), max(1, b.Dy()/2)))
		draw.BiLinear.Scale(dst, dst.Bounds(), prev, b, draw.Src, nil)
		out = append(out, dst)
		prev = dst
	}
	return out
}

// sheetCell is one tile of a contact sheet.
type sheetCell struct {
	Thumb  image.Image
	Label  string // the image id
	Worker string // who made it
}

// contactSheet lays cells out in a grid of up to cols columns, each tile
// box x box with its labels underneath, on a dark background.
func contactSheet(cells []sheetCell, box, cols int) *image.RGBA {
	const pad, text = 8, 30
	if len(cells) == 0 {
		return image.NewRGBA(image.Rect(0, 0, 1, 1))
	}
	cols = max(1, min(cols, len(cells)))
	rows := (len(cells) + cols - 1) / cols
	cw, ch := box+pad, box+text+pad
	sheet := image.NewRGBA(image.Rect(0, 0, cols*cw+pad, rows*ch+pad))
	draw.Draw(sheet, sheet.Bounds(), image.NewUniform(color.RGBA{32, 32, 36, 255}), image.Point{}, draw.Src)
	for i, c := range cells {
		x0, y0 := pad+(i%cols)*cw, pad+(i/cols)*ch
		tb := c.Thumb.Bounds()
		at := image.Pt(x0+(box-tb.Dx())/2, y0+(box-tb.Dy())/2)
		draw.Draw(sheet, tb.Sub(tb.Min).Add(at), c.Thumb, tb.Min, draw.Src)
		d := font.Drawer{Dst: sheet, Src: image.NewUniform(color.RGBA{230, 230, 230, 255}), Face: basicfont.Face7x13}
		for k, s := range []string{c.Label, c.Worker} {
			s = clip(s, box/7)
			d.Dot = fixed.P(x0+(box-7*len(s))/2, y0+box+13+k*13)
			d.DrawString(s)
			d.Src = image.NewUniform(color.RGBA{150, 150, 160, 255})
		}
	}
	return sheet
}

// clip shortens s to n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n || n < 2 {
		return s
	}
	return s[:n-1] + "~"
}

// process decodes a job's image and makes its outputs: the thumbnail and
// the extra transform ("gray": a grayscale copy; "ladder": 1/2, 1/4 and 1/8
// sizes).
func process(job *ImageJob, box int, transform string) (*Result, error) {
	src, _, err := image.Decode(bytes.NewReader(job.Data))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", job.ID, err)
	}
	b := src.Bounds()
	r := &Result{Run: job.Run, ID: job.ID, SrcW: b.Dx(), SrcH: b.Dy()}
	if r.Thumb, err = encodePNG(thumbnail(src, box)); err != nil {
		return nil, err
	}
	switch transform {
	case "gray":
		data, err := encodeJPEG(grayscale(src))
		if err != nil {
			return nil, err
		}
		r.Variants = append(r.Variants, Variant{Name: "gray", Ext: ".jpg", Data: data})
	case "ladder":
		for i, img := range ladder(src) {
			data, err := encodeJPEG(img)
			if err != nil {
				return nil, err
			}
			r.Variants = append(r.Variants, Variant{Name: []string{"half", "quarter", "eighth"}[i], Ext: ".jpg", Data: data})
		}
	default:
		return nil, fmt.Errorf("unknown transform %q", transform)
	}
	return r, nil
}
