//! Exact solution of any linear compartment model, mammillary or not.
//!
//! Perez-Ruixo's esketamine model routes drug through a liver compartment and on to a
//! metabolite; its rate matrix is not mammillary, so the cubic of §4.2 does not apply.
//! Any linear system dx/dt = K·x + B·u with u constant over a step is solved exactly by
//! the matrix exponential: x(t+Δ) = Φ·x(t) + Γ·u with Φ = e^{KΔ} and Γ = ∫₀^Δ e^{Ks} ds·B.
//! Both come from one exponential of the block matrix [[K, B], [0, 0]]·Δ (Van Loan),
//! computed by scaling and squaring with a [6/6] Padé approximant; the matrices are at
//! most a dozen rows, so a small hand-written dense routine beats a linear-algebra crate
//! on compile time. Φ and Γ are cached per step length, so a regular grid costs one
//! matrix-vector product per step.
//!
//! The effect site and the running AUCs are extra linear rows of the same system, so
//! they are as exact as the concentrations.

use crate::mammillary::same_step;

/// A small dense square matrix, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mat {
    n: usize,
    a: Vec<f64>,
}

impl Mat {
    pub fn zeros(n: usize) -> Self {
        Self { n, a: vec![0.0; n * n] }
    }
    pub fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n);
        for i in 0..n {
            m[(i, i)] = 1.0;
        }
        m
    }
    pub fn n(&self) -> usize {
        self.n
    }
    fn mul(&self, other: &Mat) -> Mat {
        let n = self.n;
        let mut out = Mat::zeros(n);
        for i in 0..n {
            for k in 0..n {
                let a = self.a[i * n + k];
                if a == 0.0 {
                    continue;
                }
                let row = &other.a[k * n..k * n + n];
                for (o, b) in out.a[i * n..i * n + n].iter_mut().zip(row) {
                    *o += a * b;
                }
            }
        }
        out
    }
    fn scaled(&self, s: f64) -> Mat {
        Mat { n: self.n, a: self.a.iter().map(|v| v * s).collect() }
    }
    fn add_scaled(&mut self, other: &Mat, s: f64) {
        for (a, b) in self.a.iter_mut().zip(&other.a) {
            *a += s * b;
        }
    }
    fn norm_inf(&self) -> f64 {
        (0..self.n)
            .map(|i| self.a[i * self.n..(i + 1) * self.n].iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0, f64::max)
    }
    /// Solves self · X = rhs by Gaussian elimination with partial pivoting.
    fn solve(&self, rhs: &Mat) -> Mat {
        let n = self.n;
        let mut a = self.a.clone();
        let mut b = rhs.a.clone();
        for col in 0..n {
            let pivot = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs())).unwrap_or(col);
            if pivot != col {
                for j in 0..n {
                    a.swap(col * n + j, pivot * n + j);
                    b.swap(col * n + j, pivot * n + j);
                }
            }
            let d = a[col * n + col];
            for i in col + 1..n {
                let f = a[i * n + col] / d;
                if f == 0.0 {
                    continue;
                }
                for j in col..n {
                    a[i * n + j] -= f * a[col * n + j];
                }
                for j in 0..n {
                    b[i * n + j] -= f * b[col * n + j];
                }
            }
        }
        for col in (0..n).rev() {
            let d = a[col * n + col];
            for j in 0..n {
                b[col * n + j] /= d;
            }
            for i in 0..col {
                let f = a[i * n + col];
                if f == 0.0 {
                    continue;
                }
                for j in 0..n {
                    b[i * n + j] -= f * b[col * n + j];
                }
            }
        }
        Mat { n, a: b }
    }
    pub fn mul_vec(&self, x: &[f64], out: &mut [f64]) {
        let n = self.n;
        for (i, o) in out.iter_mut().enumerate().take(n) {
            *o = self.a[i * n..i * n + n].iter().zip(x).map(|(a, b)| a * b).sum();
        }
    }
}

impl std::ops::Index<(usize, usize)> for Mat {
    type Output = f64;
    fn index(&self, (i, j): (usize, usize)) -> &f64 {
        &self.a[i * self.n + j]
    }
}
impl std::ops::IndexMut<(usize, usize)> for Mat {
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut f64 {
        &mut self.a[i * self.n + j]
    }
}

/// e^A by scaling and squaring with the [6/6] Padé approximant. With ‖A/2^s‖∞ ≤ 1/2 the
/// approximant's relative backward error is below 3.4e-16 (Moler & Van Loan 2003).
pub(crate) fn expm(a: &Mat) -> Mat {
    let n = a.n;
    let norm = a.norm_inf();
    let s = if norm > 0.5 { (norm / 0.5).log2().ceil() as i32 } else { 0 };
    let a = a.scaled(0.5f64.powi(s));
    // c_k = (2q−k)! q! / ((2q)! k! (q−k)!), q = 6.
    const C: [f64; 7] = [1.0, 0.5, 5.0 / 44.0, 1.0 / 66.0, 1.0 / 792.0, 1.0 / 15840.0, 1.0 / 665280.0];
    let mut num = Mat::identity(n);
    let mut den = Mat::identity(n);
    let mut power = Mat::identity(n);
    for (k, c) in C.iter().enumerate().skip(1) {
        power = power.mul(&a);
        num.add_scaled(&power, *c);
        den.add_scaled(&power, if k % 2 == 0 { *c } else { -*c });
    }
    let mut r = den.solve(&num);
    for _ in 0..s {
        r = r.mul(&r);
    }
    r
}

/// A linear compartment model under construction: amounts in mg, first-order transfers
/// in 1/min.
#[derive(Debug, Clone)]
pub(crate) struct LinearSystem {
    names: Vec<&'static str>,
    k: Vec<Vec<f64>>,
    entries: Vec<usize>,
    plasma: (usize, f64),
    metabolite: Option<(usize, f64)>,
}

impl LinearSystem {
    /// A system whose plasma concentration is compartment `central` over `volume_l`.
    pub fn new() -> Self {
        Self { names: Vec::new(), k: Vec::new(), entries: Vec::new(), plasma: (0, 1.0), metabolite: None }
    }
    pub fn compartment(&mut self, name: &'static str) -> usize {
        self.names.push(name);
        for row in &mut self.k {
            row.push(0.0);
        }
        self.k.push(vec![0.0; self.names.len()]);
        self.names.len() - 1
    }
    /// First-order transfer from → to at `rate` per minute.
    pub fn transfer(&mut self, from: usize, to: usize, rate: f64) {
        self.k[from][from] -= rate;
        self.k[to][from] += rate;
    }
    /// First-order loss from the system.
    pub fn eliminate(&mut self, from: usize, rate: f64) {
        self.k[from][from] -= rate;
    }
    /// Declares where doses can enter, in entry order (entry 0 must be the central
    /// compartment: IV doses and TCI go there).
    pub fn entries(&mut self, compartments: &[usize]) {
        self.entries = compartments.to_vec();
    }
    pub fn observe_plasma(&mut self, compartment: usize, volume_l: f64) {
        self.plasma = (compartment, volume_l);
    }
    pub fn observe_metabolite(&mut self, compartment: usize, volume_l: f64) {
        self.metabolite = Some((compartment, volume_l));
    }

    pub(crate) fn engine(&self, ke0: Option<f64>) -> MatrixEngine {
        let nc = self.names.len();
        let effect = ke0.map(|_| nc);
        let auc_plasma = nc + usize::from(ke0.is_some());
        let auc_metabolite = self.metabolite.map(|_| auc_plasma + 1);
        let size = auc_plasma + 1 + usize::from(self.metabolite.is_some());
        let mut k = Mat::zeros(size);
        for i in 0..nc {
            for j in 0..nc {
                k[(i, j)] = self.k[i][j];
            }
        }
        let (c, vc) = self.plasma;
        if let (Some(e), Some(ke0)) = (effect, ke0) {
            // dCe/dt = ke0·(A_central/Vc − Ce), Ce in mg/L.
            k[(e, c)] = ke0 / vc;
            k[(e, e)] = -ke0;
        }
        k[(auc_plasma, c)] = 1.0 / vc;
        if let (Some(row), Some((m, vm))) = (auc_metabolite, self.metabolite) {
            k[(row, m)] = 1.0 / vm;
        }
        MatrixEngine {
            k,
            entries: self.entries.clone(),
            plasma: self.plasma,
            effect,
            metabolite: self.metabolite,
            auc_plasma,
            auc_metabolite,
        }
    }
}

impl Default for LinearSystem {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MatrixEngine {
    k: Mat,
    entries: Vec<usize>,
    plasma: (usize, f64),
    effect: Option<usize>,
    metabolite: Option<(usize, f64)>,
    auc_plasma: usize,
    auc_metabolite: Option<usize>,
}

/// Φ and Γ for the last few step lengths.
#[derive(Debug, Clone, Default)]
pub(crate) struct MatrixCache {
    slots: Vec<Step>,
    next: usize,
    scratch: Vec<f64>,
}

#[derive(Debug, Clone)]
struct Step {
    dt: f64,
    phi: Mat,
    /// Column e: the state after dt of a unit rate into entry e, from zero.
    gamma: Vec<Vec<f64>>,
}

const CACHE_SLOTS: usize = 4;

impl MatrixEngine {
    pub fn entries(&self) -> usize {
        self.entries.len()
    }
    pub fn state_len(&self) -> usize {
        self.k.n()
    }
    pub fn bolus(&self, x: &mut [f64], entry: usize, mg: f64) {
        x[self.entries[entry]] += mg;
    }

    fn step(&self, dt: f64) -> Step {
        let n = self.k.n();
        let m = self.entries.len();
        let mut big = Mat::zeros(n + m);
        for i in 0..n {
            for j in 0..n {
                big[(i, j)] = self.k[(i, j)] * dt;
            }
        }
        for (e, &c) in self.entries.iter().enumerate() {
            big[(c, n + e)] = dt;
        }
        let exp = expm(&big);
        let mut phi = Mat::zeros(n);
        for i in 0..n {
            for j in 0..n {
                phi[(i, j)] = exp[(i, j)];
            }
        }
        let gamma = (0..m).map(|e| (0..n).map(|i| exp[(i, n + e)]).collect()).collect();
        Step { dt, phi, gamma }
    }

    pub fn advance(&self, x: &mut [f64], dt: f64, rates: &[f64], cache: &mut MatrixCache) {
        let slot = match cache.slots.iter().position(|s| same_step(s.dt, dt)) {
            Some(i) => i,
            None => {
                let step = self.step(dt);
                if cache.slots.len() < CACHE_SLOTS {
                    cache.slots.push(step);
                    cache.slots.len() - 1
                } else {
                    let i = cache.next;
                    cache.slots[i] = step;
                    cache.next = (i + 1) % CACHE_SLOTS;
                    i
                }
            }
        };
        let step = &cache.slots[slot];
        cache.scratch.resize(x.len(), 0.0);
        step.phi.mul_vec(x, &mut cache.scratch);
        x.copy_from_slice(&cache.scratch);
        for (rate, g) in rates.iter().zip(&step.gamma) {
            if *rate != 0.0 {
                for (xi, gi) in x.iter_mut().zip(g) {
                    *xi += rate * gi;
                }
            }
        }
    }

    /// (plasma, effect, metabolite) in mg/L, then the plasma and metabolite AUC in mg·min/L.
    pub fn observe(&self, x: &[f64]) -> [f64; 5] {
        [
            x[self.plasma.0] / self.plasma.1,
            self.effect.map_or(f64::NAN, |e| x[e]),
            self.metabolite.map_or(f64::NAN, |(m, v)| x[m] / v),
            x[self.auc_plasma],
            self.auc_metabolite.map_or(f64::NAN, |i| x[i]),
        ]
    }

    pub fn has_effect(&self) -> bool {
        self.effect.is_some()
    }
    pub fn has_metabolite(&self) -> bool {
        self.metabolite.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expm_of_a_diagonal_and_a_rotation() {
        let mut d = Mat::zeros(2);
        d[(0, 0)] = -3.0;
        d[(1, 1)] = 0.25;
        let e = expm(&d);
        assert!((e[(0, 0)] / (-3.0f64).exp() - 1.0).abs() < 1e-14);
        assert!((e[(1, 1)] / 0.25f64.exp() - 1.0).abs() < 1e-14);
        let mut r = Mat::zeros(2);
        r[(0, 1)] = -2.0;
        r[(1, 0)] = 2.0;
        let e = expm(&r);
        assert!((e[(0, 0)] - 2.0f64.cos()).abs() < 1e-14);
        assert!((e[(1, 0)] - 2.0f64.sin()).abs() < 1e-14);
    }

    #[test]
    fn one_compartment_infusion_is_exact() {
        let mut s = LinearSystem::new();
        let c = s.compartment("central");
        s.eliminate(c, 0.1);
        s.entries(&[c]);
        s.observe_plasma(c, 10.0);
        let engine = s.engine(None);
        let mut x = vec![0.0; engine.state_len()];
        let mut cache = MatrixCache::default();
        engine.advance(&mut x, 7.0, &[2.0], &mut cache);
        let exact = 2.0 / (0.1 * 10.0) * (1.0 - (-0.7f64).exp());
        assert!((engine.observe(&x)[0] - exact).abs() < 1e-14);
    }
}
