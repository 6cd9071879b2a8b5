#[test]
fn old_and_new_compile_agree() {
    let mut cases = 0; let mut errs = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("assets/flows").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") { continue; }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut variants = vec![text.clone()];
        for i in 0..lines.len() {
            let mut v = lines.clone(); v.remove(i); variants.push(v.join("\n"));
            let l = lines[i];
            for (a, b) in [("\"", "\"x"), ("=", "= \"zz\" #"), ("true", "false"), ("0.", "1.5"), ("intent", "slot"), ("dtmf", "text"), ("${", "${bad "), ("http", "ftp"), ("GET", "FOO"), ("hangup", "nohang"), ("goto", "next"), ("collect", "#"), ("examples", "label"), ("timeout_ms = ", "timeout_ms = 9999"), ("min_length", "length"), ("when = \"", "when = \"a b ")] {
                if l.contains(a) {
                    let mut v = lines.clone(); let r = l.replacen(a, b, 1); v[i] = &r; variants.push(v.join("\n"));
                }
            }
        }
        for v in variants {
            let old = super::flow_old_tmp::Flow::parse(&v, "f.toml");
            let new = super::flow::Flow::parse(&v, "f.toml");
            assert_eq!(format!("{old:?}"), format!("{new:?}"), "variant:\n{v}");
            if let Err(e) = &old { errs.insert(e.to_string().split(':').skip(2).collect::<String>().chars().take(30).collect::<String>()); }
            cases += 1;
        }
    }
    eprintln!("{cases} variants agree; {} error kinds: {errs:#?}", errs.len());
}
