//! Helpers shared by the test modules, including an RK4 integrator written here and
//! only here, so the exact solvers are checked against something independent.

use keta_pk::{Individual, Model, Options, Patient, Regimen, grid, simulate};

pub fn individual(model: &str, patient: &Patient, options: &Options) -> Individual {
    Model::named(model).unwrap().individual(patient, options).unwrap()
}

pub fn domino(weight: f64) -> Individual {
    individual("domino", &Patient::new(weight), &Options::default())
}

pub fn plasma(ind: &Individual, regimen: &str, times: &[f64]) -> Vec<f64> {
    simulate(ind, &Regimen::parse(regimen).unwrap(), times).unwrap().plasma()
}

pub fn fine_grid(until: f64, step: f64) -> Vec<f64> {
    grid(until, step)
}

pub fn rel_close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) + abs
}

/// Classic fourth-order Runge–Kutta for dx/dt = f(t, x), fixed step, from t0 to t1.
pub fn rk4(f: &dyn Fn(f64, &[f64]) -> Vec<f64>, x: &mut [f64], t0: f64, t1: f64, steps: usize) {
    let h = (t1 - t0) / steps as f64;
    let axpy = |x: &[f64], k: &[f64], s: f64| x.iter().zip(k).map(|(a, b)| a + s * b).collect::<Vec<_>>();
    for i in 0..steps {
        let t = t0 + i as f64 * h;
        let k1 = f(t, x);
        let k2 = f(t + h / 2.0, &axpy(x, &k1, h / 2.0));
        let k3 = f(t + h / 2.0, &axpy(x, &k2, h / 2.0));
        let k4 = f(t + h, &axpy(x, &k3, h));
        for j in 0..x.len() {
            x[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
        }
    }
}
