//! A live synthetic test pattern in I420: a scrolling diagonal ramp, a
//! bouncing box, slowly cycling colour, and the frame number drawn as large
//! seven-segment digits in the top-left corner of the Y plane.
//!
//! Everything is drawn with row copies and fills (no per-pixel arithmetic),
//! so it stays cheap even in unoptimised test builds.

use openh264::formats::YUVSource;

/// One I420 picture (Y full size, U and V half size in each direction).
#[derive(Debug, Clone)]
pub struct I420Frame {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl I420Frame {
    /// A black frame. `width` and `height` are rounded up to even numbers.
    pub fn new(width: usize, height: usize) -> Self {
        let width = width.max(2).next_multiple_of(2);
        let height = height.max(2).next_multiple_of(2);
        let c = (width / 2) * (height / 2);
        I420Frame { width, height, y: vec![16; width * height], u: vec![128; c], v: vec![128; c] }
    }

    fn fill_y(&mut self, x: usize, y: usize, w: usize, h: usize, value: u8) {
        let x1 = (x + w).min(self.width);
        let y1 = (y + h).min(self.height);
        if x >= x1 {
            return;
        }
        for row in y..y1 {
            let start = row * self.width;
            self.y[start + x..start + x1].fill(value);
        }
    }

    fn fill_uv(&mut self, x: usize, y: usize, w: usize, h: usize, u: u8, v: u8) {
        let cw = self.width / 2;
        let ch = self.height / 2;
        let (x, y, x1, y1) = (x / 2, y / 2, ((x + w) / 2).min(cw), ((y + h) / 2).min(ch));
        if x >= x1 {
            return;
        }
        for row in y..y1 {
            let start = row * cw;
            self.u[start + x..start + x1].fill(u);
            self.v[start + x..start + x1].fill(v);
        }
    }
}

impl YUVSource for I420Frame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }
    fn y(&self) -> &[u8] {
        &self.y
    }
    fn u(&self) -> &[u8] {
        &self.u
    }
    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Segments a..g of the digits 0–9 (bit 0 = a … bit 6 = g).
const SEGMENTS: [u8; 10] = [
    0b011_1111, 0b000_0110, 0b101_1011, 0b100_1111, 0b110_0110, 0b110_1101, 0b111_1101, 0b000_0111, 0b111_1111,
    0b110_1111,
];

/// Generates the frames of the pattern.
#[derive(Debug)]
pub struct TestPattern {
    frame: I420Frame,
    /// One ramp row, long enough to start anywhere in the first 256 pixels.
    ramp: Vec<u8>,
}

impl TestPattern {
    pub fn new(width: usize, height: usize) -> Self {
        let frame = I420Frame::new(width, height);
        let ramp = (0..frame.width + 256).map(|i| 32 + ((i % 256) as u8) / 2).collect();
        TestPattern { frame, ramp }
    }

    pub fn width(&self) -> usize {
        self.frame.width
    }

    pub fn height(&self) -> usize {
        self.frame.height
    }

    /// The frame last rendered.
    pub fn frame(&self) -> &I420Frame {
        &self.frame
    }

    /// Draw frame number `n` and return it.
    pub fn render(&mut self, n: u64) -> &I420Frame {
        let (w, h) = (self.frame.width, self.frame.height);
        let t = (n * 4) as usize;
        // Scrolling diagonal ramp.
        for row in 0..h {
            let off = (row + t) % 256;
            self.frame.y[row * w..(row + 1) * w].copy_from_slice(&self.ramp[off..off + w]);
        }
        // Slowly cycling background colour.
        let phase = (n % 256) as u8;
        self.frame.u.fill(96u8.wrapping_add(phase / 4));
        self.frame.v.fill(160u8.wrapping_sub(phase / 4));
        // A bouncing box.
        let bw = (w / 8).max(4);
        let bh = (h / 6).max(4);
        let bx = bounce(n as usize * 7, w - bw.min(w));
        let by = bounce(n as usize * 5, h - bh.min(h));
        self.frame.fill_y(bx, by, bw, bh, 235);
        self.frame.fill_uv(bx, by, bw, bh, 200, 60);
        // The frame counter on a dark plate.
        self.draw_number(n);
        &self.frame
    }

    fn draw_number(&mut self, n: u64) {
        let digits: Vec<u8> = n.to_string().bytes().map(|b| b - b'0').collect();
        // Digit cell: 5 units wide, 9 high; unit from the picture height.
        let unit = (self.frame.height / 60).max(1);
        let (cell_w, cell_h) = (6 * unit, 9 * unit);
        let margin = 2 * unit;
        self.frame.fill_y(0, 0, margin * 2 + cell_w * digits.len(), margin * 2 + cell_h, 16);
        self.frame.fill_uv(0, 0, margin * 2 + cell_w * digits.len(), margin * 2 + cell_h, 128, 128);
        for (i, d) in digits.iter().enumerate() {
            self.draw_digit(margin + i * cell_w, margin, unit, *d);
        }
    }

    fn draw_digit(&mut self, x: usize, y: usize, u: usize, d: u8) {
        let seg = SEGMENTS[usize::from(d % 10)];
        // (x, y, w, h) of each segment in units, a digit being 5 x 9 units.
        let rects = [
            (1, 0, 3, 1), // a
            (4, 1, 1, 3), // b
            (4, 5, 1, 3), // c
            (1, 8, 3, 1), // d
            (0, 5, 1, 3), // e
            (0, 1, 1, 3), // f
            (1, 4, 3, 1), // g
        ];
        for (i, (rx, ry, rw, rh)) in rects.iter().enumerate() {
            if seg & (1 << i) != 0 {
                self.frame.fill_y(x + rx * u, y + ry * u, rw * u, rh * u, 235);
            }
        }
    }
}

fn bounce(pos: usize, span: usize) -> usize {
    if span == 0 {
        return 0;
    }
    let p = pos % (2 * span);
    if p < span {
        p
    } else {
        2 * span - p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_differ_and_fit() {
        let mut p = TestPattern::new(320, 240);
        let a = p.render(1).y.clone();
        let b = p.render(2).y.clone();
        assert_eq!(a.len(), 320 * 240);
        assert_ne!(a, b);
        // Odd sizes are rounded up to even.
        let mut p = TestPattern::new(33, 17);
        let f = p.render(123456);
        assert_eq!((f.width, f.height), (34, 18));
    }
}
