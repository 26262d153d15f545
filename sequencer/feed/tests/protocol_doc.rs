//! `docs/PROTOCOL.md`, section "Sequenced feed (MoldUDP64)", must show
//! exactly the block layouts the code defines.
#![forbid(unsafe_code)]

use peregrine_feed::block::BLOCK_LAYOUTS;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");
    std::fs::read_to_string(path).expect("docs/PROTOCOL.md exists")
}

/// (offset, length, field) rows of the table under `### name`.
fn table_for(doc: &str, name: &str) -> Option<Vec<(usize, usize, String)>> {
    let heading = format!("### {name}\n");
    let start = doc.find(&heading)? + heading.len();
    let rest = &doc[start..];
    let end = rest
        .find("\n### ")
        .or_else(|| rest.find("\n## "))
        .unwrap_or(rest.len());
    let rows = rest[..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 5 {
                return None;
            }
            let (Ok(off), Ok(len)) = (cells[1].parse::<usize>(), cells[2].parse::<usize>()) else {
                return None;
            };
            Some((off, len, cells[3].trim_matches('`').to_string()))
        })
        .collect();
    Some(rows)
}

#[test]
fn every_block_table_matches_the_code() {
    let doc = doc();
    let section = doc
        .find("## Sequenced feed (MoldUDP64)\n")
        .expect("PROTOCOL.md has the feed section");
    let doc = &doc[section..];
    for (name, fields) in BLOCK_LAYOUTS {
        let rows = table_for(doc, name).unwrap_or_else(|| panic!("no `### {name}` in the feed section"));
        let code: Vec<(usize, usize, String)> = fields
            .iter()
            .map(|(f, r)| (r.start, r.end - r.start, f.to_string()))
            .collect();
        assert_eq!(rows, code, "PROTOCOL.md table for {name} differs from the code");
    }
}

#[test]
fn the_check_detects_drift() {
    let doc = doc().replacen("| 24 | 8 | `trade_id`", "| 24 | 4 | `trade_id`", 1);
    let rows = table_for(&doc, "Trade block").unwrap();
    let code: Vec<(usize, usize, String)> = BLOCK_LAYOUTS[1]
        .1
        .iter()
        .map(|(f, r)| (r.start, r.end - r.start, f.to_string()))
        .collect();
    assert_ne!(rows, code);
}
