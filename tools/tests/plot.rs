//! The latency plot: two synthetic histograms drawn into an SVG file that
//! is well-formed XML and carries both series' names and the axis labels.

use hdrhistogram::Histogram;
use peregrine_tools::plot::{write_svg, Curve};

/// Checks that `doc` is one well-formed XML element tree: tags balance,
/// attributes are quoted, text has no raw `<` and only known entities.
fn check_well_formed(doc: &str) -> Result<String, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut root = None;
    let mut rest = doc.trim_start();
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            check_text(rest)?;
            break;
        };
        check_text(&rest[..lt])?;
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<?") {
            rest = &r[r.find("?>").ok_or("unclosed <?")? + 2..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").ok_or("unclosed comment")? + 3..];
            continue;
        }
        let gt = tag_end(rest).ok_or("unclosed tag")?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || "-_:".contains(c)) {
            return Err(format!("bad tag name in <{tag}>"));
        }
        if body[name.len()..].matches('"').count() % 2 != 0 {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        if stack.is_empty() {
            if root.is_some() {
                return Err("more than one root element".into());
            }
            root = Some(name.clone());
        }
        if !self_closing {
            stack.push(name);
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> never closed"));
    }
    root.ok_or_else(|| "no element".to_string())
}

/// Index of the `>` ending the tag at the start of `s`, outside quotes.
fn tag_end(s: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn check_text(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(amp) = rest.find('&') {
        let r = &rest[amp + 1..];
        let semi = r.find(';').ok_or(format!("bare & in {t:?}"))?;
        let ent = &r[..semi];
        let known = ["amp", "lt", "gt", "quot", "apos"].contains(&ent) || ent.starts_with('#');
        if !known {
            return Err(format!("unknown entity &{ent};"));
        }
        rest = &r[semi + 1..];
    }
    Ok(())
}

/// The trimmed contents of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find("<text") {
        let after = &rest[open..];
        let (Some(gt), Some(close)) = (after.find('>'), after.find("</text>")) else {
            break;
        };
        out.push(after[gt + 1..close].trim().to_string());
        rest = &after[close..];
    }
    out
}

fn histogram(median_ns: u64, tail_ns: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    for i in 0..200_000u64 {
        // Mostly around the median, one in a thousand in the tail.
        let v = if i % 1000 == 999 {
            tail_ns + i % 7 * 1000
        } else {
            median_ns + i % 500
        };
        h.record(v).unwrap();
    }
    h.record(tail_ns * 5).unwrap();
    h
}

#[test]
fn a_plot_of_two_histograms_is_valid_svg_with_both_series_and_the_axes() {
    let peregrine = histogram(9_000, 60_000);
    let baseline = histogram(7_000, 40_000);
    let path = std::env::temp_dir().join(format!("peregrine-plot-test-{}.svg", std::process::id()));
    let title = "peregrine bench --transport udp --pingpong --plot out.svg";
    write_svg(
        &path,
        title,
        &[
            Curve {
                label: "peregrine",
                hist: &peregrine,
            },
            Curve {
                label: "raw echo",
                hist: &baseline,
            },
        ],
    )
    .unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    if std::env::var_os("KEEP_PLOT").is_none() {
        let _ = std::fs::remove_file(&path);
    }

    assert_eq!(check_well_formed(&svg), Ok("svg".to_string()), "{svg}");
    // Each as the whole text of an element: the legend, the axis names,
    // the percentile ticks, the title.
    let texts = texts(&svg);
    for needle in [
        "peregrine",
        "raw echo",
        "percentile",
        "round trip (µs, log scale)",
        "50%",
        "90%",
        "99%",
        "99.9%",
        "99.99%",
        "99.999%",
        "max",
        title,
    ] {
        assert!(
            texts.iter().any(|t| t == needle),
            "{needle:?} missing from {texts:?}"
        );
    }
    assert!(svg.contains("<text"), "labels are SVG text elements");
    assert!(svg.matches("<polyline").count() >= 2, "two curves drawn");
}

#[test]
fn the_checker_rejects_broken_documents() {
    assert!(check_well_formed("<svg><g></svg>").is_err());
    assert!(check_well_formed("<svg>a & b</svg>").is_err());
    assert!(check_well_formed("<svg/><svg/>").is_err());
    assert_eq!(
        check_well_formed("<?xml version=\"1.0\"?><svg a=\"1>2\"><t>x</t></svg>"),
        Ok("svg".into())
    );
}
