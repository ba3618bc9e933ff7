//! `eval --shard`: which slice of the image list this run scores, given as `k/n` or read from a
//! batch scheduler's array index (`auto`: a Slurm job array; `auto/N`: a Kubernetes Indexed Job
//! of N completions, or a Slurm array checked against N).

use anyhow::{Result, bail};

/// Slurm's array variables.
const SLURM_ID: &str = "SLURM_ARRAY_TASK_ID";
const SLURM_MIN: &str = "SLURM_ARRAY_TASK_MIN";
const SLURM_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
const SLURM_STEP: &str = "SLURM_ARRAY_TASK_STEP";
/// A Kubernetes Indexed Job's (0-based) completion index.
const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";

fn number(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<usize>> {
    match env(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse() {
            Ok(n) => Ok(Some(n)),
            Err(_) => bail!("--shard auto: {name}={v:?} is not a whole number"),
        },
    }
}

/// The shard `(k, n)`, 1-based: `spec` is `k/n`, `auto` or `auto/N`; `env` reads the
/// environment (a parameter, so tests can give their own).
pub fn parse(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(usize, usize)> {
    let spec = spec.trim();
    let Some(rest) = spec.strip_prefix("auto") else {
        let parsed = spec
            .split_once('/')
            .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
        return match parsed {
            Some((k, n)) if n >= 1 && (1..=n).contains(&k) => Ok((k, n)),
            _ => bail!(
                "--shard `{spec}` must be k/n with 1 <= k <= n (e.g. 2/4), auto (a Slurm job array) or auto/N (a Kubernetes Indexed Job of N completions)"
            ),
        };
    };
    let given = match rest.strip_prefix('/') {
        Some(n) => match n.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Some(n),
            _ => bail!("--shard `{spec}`: the count after auto/ must be a whole number, 1 or more"),
        },
        None if rest.is_empty() => None,
        None => bail!("--shard `{spec}` must be k/n, auto or auto/N"),
    };
    if let Some(id) = number(env, SLURM_ID)? {
        if number(env, SLURM_STEP)?.is_some_and(|s| s != 1) {
            bail!(
                "--shard auto: the Slurm array has a step ({SLURM_STEP}); use a contiguous one (--array=1-N)"
            );
        }
        let min = number(env, SLURM_MIN)?.unwrap_or(0);
        let Some(count) = number(env, SLURM_COUNT)? else {
            bail!("--shard auto: {SLURM_ID} is set but {SLURM_COUNT} is not; pass --shard k/n");
        };
        if given.is_some_and(|n| n != count) {
            bail!(
                "--shard {spec}: the Slurm array has {count} tasks; pass --shard auto or auto/{count}"
            );
        }
        let k = id.checked_sub(min).and_then(|i| i.checked_add(1));
        return match k {
            Some(k) if (1..=count).contains(&k) => Ok((k, count)),
            _ => bail!(
                "--shard auto: {SLURM_ID}={id} lies outside the array ({SLURM_MIN}={min}, {SLURM_COUNT}={count}); run it as a task of a contiguous array (--array=1-N)"
            ),
        };
    }
    if let Some(index) = number(env, K8S_INDEX)? {
        let Some(n) = given else {
            bail!(
                "--shard auto: {K8S_INDEX} is set (a Kubernetes Indexed Job) but the completions count is not: pass --shard auto/N with the Job's completions"
            );
        };
        if index >= n {
            bail!(
                "--shard {spec}: {K8S_INDEX}={index} but the Job has {n} completions (indices 0 to {})",
                n - 1
            );
        }
        return Ok((index + 1, n));
    }
    bail!(
        "--shard {spec}: neither {SLURM_ID} (a Slurm job array) nor {K8S_INDEX} (a Kubernetes Indexed Job) is set; pass --shard k/n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    type Env = dyn Fn(&str) -> Option<String>;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn given_slurm_and_kubernetes() {
        let none = with(&[]);
        assert_eq!(parse("2/4", &none).unwrap(), (2, 4));
        let slurm0 = with(&[(SLURM_ID, "0"), (SLURM_MIN, "0"), (SLURM_COUNT, "4")]);
        assert_eq!(parse("auto", &slurm0).unwrap(), (1, 4));
        let slurm1 = with(&[
            (SLURM_ID, "4"),
            (SLURM_MIN, "1"),
            (SLURM_COUNT, "4"),
            (SLURM_STEP, "1"),
        ]);
        assert_eq!(parse("auto", &slurm1).unwrap(), (4, 4));
        assert_eq!(parse("auto/4", &slurm1).unwrap(), (4, 4));
        let k8s = with(&[(K8S_INDEX, "2")]);
        assert_eq!(parse("auto/3", &k8s).unwrap(), (3, 3));
        let cases: [(&str, &Env, &str); 7] = [
            ("0/4", &none, "--shard `0/4` must be k/n with 1 <= k <= n"),
            (
                "auto",
                &none,
                "--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; pass --shard k/n",
            ),
            (
                "auto",
                &k8s,
                "--shard auto: JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but the completions count is not: pass --shard auto/N with the Job's completions",
            ),
            (
                "auto/2",
                &k8s,
                "--shard auto/2: JOB_COMPLETION_INDEX=2 but the Job has 2 completions (indices 0 to 1)",
            ),
            (
                "auto/5",
                &slurm1,
                "--shard auto/5: the Slurm array has 4 tasks; pass --shard auto or auto/4",
            ),
            (
                "auto/0",
                &k8s,
                "--shard `auto/0`: the count after auto/ must be a whole number, 1 or more",
            ),
            (
                "auto",
                &with(&[(SLURM_ID, "x")]),
                "--shard auto: SLURM_ARRAY_TASK_ID=\"x\" is not a whole number",
            ),
        ];
        for (spec, env, message) in cases {
            let e = parse(spec, env).unwrap_err().to_string();
            assert!(e.starts_with(message), "{spec}: {e}");
        }
        let stepped = with(&[(SLURM_ID, "4"), (SLURM_COUNT, "2"), (SLURM_STEP, "4")]);
        assert!(
            parse("auto", &stepped)
                .unwrap_err()
                .to_string()
                .contains("contiguous")
        );
    }
}
