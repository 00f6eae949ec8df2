//! No two modules of a crate import each other.
//!
//! When `a.rs` uses `crate::b` and `b.rs` uses `crate::a`, a newcomer cannot read either file
//! first: each only makes sense after the other. This test finds such pairs in every crate of
//! the workspace by scanning the text of each file for paths that start at `crate::`,
//! `super::` or `self::`. It is a text scan, not a Rust parser, and crude on purpose so that
//! it stays small: paths in strings count, `/* */` comments are not skipped, and a nested use
//! group is read only up to its first `}`.
//!
//! Set `CIRCLES_ROOT` to check another tree than this workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's place in its crate, one segment per `::` (`["peer", "storage"]`); empty for the
/// crate root.
type ModulePath = Vec<String>;

/// A crate's module files as text, the input of the scan (tests build it in memory).
type Sources = BTreeMap<ModulePath, String>;

/// Where a file's unit tests start. They may import anything from anywhere, so their imports
/// say nothing about the reading order of the modules.
const TEST_MODULE_START: &str = "#[cfg(test)]\nmod tests";

/// What the failure says after the list of circles.
const WHY_CIRCLES_MATTER: &str = "In a circle each file uses the other, so a newcomer cannot \
read either one first; move the piece both need into a third module that both import.";

#[test]
fn no_two_module_import_circles() {
    let root = workspace_root();
    let crates = find_crates(&root);
    assert!(
        !crates.is_empty(),
        "no crate (a directory with Cargo.toml and src/) under {}",
        root.display()
    );
    let mut circles = Vec::new();
    for crate_dir in &crates {
        let files = module_files(&crate_dir.join("src"));
        for (a, b) in find_circles(&read_sources(&files)) {
            let (a, b) = (relative(&files[&a], &root), relative(&files[&b], &root));
            circles.push(format!("{a} <-> {b}"));
        }
    }
    assert!(
        circles.is_empty(),
        "{} two-file import circle(s) between modules:\n  {}\n{WHY_CIRCLES_MATTER}",
        circles.len(),
        circles.join("\n  ")
    );
}

/// The tree to check: `CIRCLES_ROOT` if set, so another checkout can be checked without
/// copying this file into it; else the workspace of this crate, its manifest's parent.
fn workspace_root() -> PathBuf {
    match std::env::var_os("CIRCLES_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tests crate lies inside the workspace")
            .to_path_buf(),
    }
}

/// Every crate under `root`, sorted: a directory with a `Cargo.toml` and a `src/` directory.
/// Build output (`target`) and hidden directories (`.git`) hold no sources of ours.
fn find_crates(root: &Path) -> Vec<PathBuf> {
    let mut crates = Vec::new();
    collect_crates(root, &mut crates);
    crates.sort();
    crates
}

/// `find_crates` for one directory and everything below it; crates may nest.
fn collect_crates(dir: &Path, crates: &mut Vec<PathBuf>) {
    if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
        crates.push(dir.to_path_buf());
    }
    for sub in list_dir(dir).directories {
        let name = file_name(&sub);
        if name != "target" && !name.starts_with('.') {
            collect_crates(&sub, crates);
        }
    }
}

/// Every module file of a crate, keyed by module path. Files under a `bin` directory belong
/// to binary crates of their own, where `crate::` means something else.
fn module_files(src: &Path) -> BTreeMap<ModulePath, PathBuf> {
    let mut files = BTreeMap::new();
    collect_module_files(src, src, &mut files);
    files
}

/// `module_files` for one directory of `src` and everything below it.
fn collect_module_files(src: &Path, dir: &Path, files: &mut BTreeMap<ModulePath, PathBuf>) {
    let listing = list_dir(dir);
    for file in listing.files {
        if file.extension().is_some_and(|ext| ext == "rs") {
            let in_src = file.strip_prefix(src).expect("a file found under src/");
            files.insert(module_path(in_src), file);
        }
    }
    for sub in listing.directories {
        if file_name(&sub) != "bin" {
            collect_module_files(src, &sub, files);
        }
    }
}

/// The module a file defines, from its path under `src/`: `peer/storage.rs` is
/// `peer::storage`, `peer/mod.rs` is `peer`, a top-level `lib.rs` or `main.rs` is the root.
fn module_path(in_src: &Path) -> ModulePath {
    let mut segments: ModulePath = in_src
        .with_extension("")
        .iter()
        .map(|segment| segment.to_string_lossy().into_owned())
        .collect();
    if segments == ["lib"] || segments == ["main"] {
        return Vec::new();
    }
    if segments.last().is_some_and(|last| last == "mod") {
        segments.pop();
    }
    segments
}

/// The text of every module file. The scan itself never touches the disk, so that its tests
/// can run on sources in memory.
fn read_sources(files: &BTreeMap<ModulePath, PathBuf>) -> Sources {
    files
        .iter()
        .map(|(module, path)| {
            let text = fs::read_to_string(path)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
            (module.clone(), text)
        })
        .collect()
}

/// A directory's subdirectories and other entries, each sorted so that runs are repeatable.
/// Symbolic links are never followed as directories, so a link cannot make the walk loop.
struct Listing {
    directories: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

/// Lists `dir`; an unreadable directory fails the test rather than hide a crate.
fn list_dir(dir: &Path) -> Listing {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    let mut listing = Listing {
        directories: Vec::new(),
        files: Vec::new(),
    };
    for entry in entries {
        let entry = entry.unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
        let file_type = entry
            .file_type()
            .unwrap_or_else(|err| panic!("cannot stat {}: {err}", entry.path().display()));
        if file_type.is_dir() {
            listing.directories.push(entry.path());
        } else {
            listing.files.push(entry.path());
        }
    }
    listing.directories.sort();
    listing.files.sort();
    listing
}

/// The last component of a path found by listing a directory, which always has one.
fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a listed entry has a name")
        .to_string_lossy()
        .into_owned()
}

/// `path` as the failure message shows it: relative to the checked tree, as people type it.
fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The pairs of modules that use each other, each pair once, smaller module first. A module
/// and its descendant (a `mod.rs` and the files of its directory) are read as one unit, so
/// they do not count.
fn find_circles(sources: &Sources) -> Vec<(ModulePath, ModulePath)> {
    let edges = module_edges(sources);
    let mut circles = Vec::new();
    for (a, targets) in &edges {
        for b in targets {
            let back = edges.get(b).is_some_and(|targets| targets.contains(a));
            // With `a < b`, only `a` can be the ancestor.
            if a < b && back && !b.starts_with(a) {
                circles.push((a.clone(), b.clone()));
            }
        }
    }
    circles
}

/// For every module, the other modules of the crate its code refers to.
fn module_edges(sources: &Sources) -> BTreeMap<ModulePath, BTreeSet<ModulePath>> {
    sources
        .iter()
        .map(|(module, text)| {
            let code = code_outside_tests_and_comments(text);
            let targets = path_references(&code)
                .iter()
                .flat_map(|path| path.targets(module))
                .filter_map(|target| owning_module(&target, sources))
                .filter(|target| target != module)
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

/// The module a referenced path lies in: its longest prefix that is a module of the crate
/// (`crate::peer::Peer::new` lies in `peer`). `None` only if the crate has no root file.
fn owning_module(target: &[String], sources: &Sources) -> Option<ModulePath> {
    (0..=target.len())
        .rev()
        .map(|len| &target[..len])
        .find(|prefix| sources.contains_key(*prefix))
        .map(<[String]>::to_vec)
}

/// The part of a file whose paths count. Everything from the first unit-test module on is
/// dropped (see `TEST_MODULE_START`), and so are `//` comments, which mention paths without
/// using them. Windows line endings are made `\n` first so that they do not hide the test
/// module.
fn code_outside_tests_and_comments(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let code = match text.find(TEST_MODULE_START) {
        Some(start) => &text[..start],
        None => &text,
    };
    code.split('\n')
        .map(|line| line.find("//").map_or(line, |start| &line[..start]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a path starts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Anchor {
    Crate,
    Super,
    SelfModule,
}

/// The keywords a path may start with.
const ANCHORS: [(&str, Anchor); 3] = [
    ("crate", Anchor::Crate),
    ("super", Anchor::Super),
    ("self", Anchor::SelfModule),
];

/// A path as written, `crate::a::b` or `super::super::x`, with the text of a `::{...}` group
/// after it, if any.
#[derive(Debug, PartialEq)]
struct PathRef {
    anchor: Anchor,
    segments: Vec<String>,
    group: Option<String>,
}

impl PathRef {
    /// The full paths this path names from inside `module`: itself and, for a group, itself
    /// extended by each member. `super` starts at the module's parent, `self` at the module,
    /// and each further leading `super` climbs one more level.
    fn targets(&self, module: &[String]) -> Vec<ModulePath> {
        let mut base = match self.anchor {
            Anchor::Crate => Vec::new(),
            Anchor::Super => module[..module.len().saturating_sub(1)].to_vec(),
            Anchor::SelfModule => module.to_vec(),
        };
        let mut segments = self.segments.as_slice();
        while segments.first().is_some_and(|first| first == "super") {
            base.pop();
            segments = &segments[1..];
        }
        base.extend_from_slice(segments);
        let members = self.group.as_deref().map(group_members).unwrap_or_default();
        let mut targets = vec![base.clone()];
        targets.extend(
            members
                .into_iter()
                .map(|member| [base.clone(), member].concat()),
        );
        targets
    }
}

/// The members of a use group's text (`b::X, c as d, self`) as path segments, without
/// renames; `self` and `*` name nothing below the group's prefix. A nested group is cut at its
/// first `}`, so its members are read crudely, as are members that do not start with a name.
fn group_members(group: &str) -> Vec<Vec<String>> {
    group
        .split(',')
        .filter_map(|member| {
            let member = member.trim();
            let member = member
                .split_once(" as ")
                .map_or(member, |(name, _)| name)
                .trim();
            if member.is_empty() || member == "self" || member == "*" {
                return None;
            }
            let segments: Vec<String> = member
                .split("::")
                .filter(|segment| !segment.is_empty() && *segment != "{")
                .map(String::from)
                .collect();
            let first = segments.first()?;
            first.chars().all(is_word_char).then_some(segments)
        })
        .collect()
}

/// Every path in `code` that starts at `crate`, `super` or `self` and has at least one
/// `::name` segment after it (`crate::{a, b}` and `self::*` have none and do not count).
/// Scanning goes on after each path and its group, so the paths inside a group are read only
/// as its members.
fn path_references(code: &str) -> Vec<PathRef> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        match path_reference_at(&chars, at) {
            Some((path, end)) => {
                found.push(path);
                at = end;
            }
            None => at += 1,
        }
    }
    found
}

/// The path that starts at `at`, and where it ends. Its keyword must start a word, so that
/// `my_crate::x` does not count (`$crate::x` in a macro does).
fn path_reference_at(chars: &[char], at: usize) -> Option<(PathRef, usize)> {
    if at > 0 && is_word_char(chars[at - 1]) {
        return None;
    }
    let (keyword, anchor) = ANCHORS
        .into_iter()
        .find(|(keyword, _)| starts_with(chars, at, keyword))?;
    let mut end = at + keyword.len();
    let mut segments = Vec::new();
    while let Some((segment, next)) = segment_at(chars, end) {
        segments.push(segment);
        end = next;
    }
    if segments.is_empty() {
        return None;
    }
    let group = match group_at(chars, end) {
        Some((group, next)) => {
            end = next;
            Some(group)
        }
        None => None,
    };
    let path = PathRef {
        anchor,
        segments,
        group,
    };
    Some((path, end))
}

/// A `::name` segment at `at` and where it ends.
fn segment_at(chars: &[char], at: usize) -> Option<(String, usize)> {
    if !starts_with(chars, at, "::") {
        return None;
    }
    let start = at + 2;
    let len = chars[start..]
        .iter()
        .take_while(|c| is_word_char(**c))
        .count();
    (len > 0).then(|| (chars[start..start + len].iter().collect(), start + len))
}

/// The text of a `::{...}` group at `at`, up to the first `}`, and where the group ends. A `;`
/// before any `}` means the brace is not a use group.
fn group_at(chars: &[char], at: usize) -> Option<(String, usize)> {
    if !starts_with(chars, at, "::{") {
        return None;
    }
    let start = at + 3;
    let close = start + chars[start..].iter().position(|c| *c == '}' || *c == ';')?;
    (chars[close] == '}').then(|| (chars[start..close].iter().collect(), close + 1))
}

/// Whether `prefix` is written at `at`.
fn starts_with(chars: &[char], at: usize, prefix: &str) -> bool {
    let mut rest = chars.get(at..).unwrap_or_default().iter();
    prefix
        .chars()
        .all(|expected| rest.next() == Some(&expected))
}

/// A character of a name: a letter, a digit or `_`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The scan on crates held in memory.
mod scan {
    use super::*;

    /// A crate from `(module, text)` pairs: `"a/b"` is the module `a::b`, `""` the root.
    fn crate_of(files: &[(&str, &str)]) -> Sources {
        files
            .iter()
            .map(|(module, text)| (module_of(module), text.to_string()))
            .collect()
    }

    /// The module path written `"a/b"`.
    fn module_of(path: &str) -> ModulePath {
        path.split('/')
            .filter(|segment| !segment.is_empty())
            .map(String::from)
            .collect()
    }

    /// The modules `from` refers to.
    fn edges_from(sources: &Sources, from: &str) -> BTreeSet<ModulePath> {
        module_edges(sources)
            .remove(&module_of(from))
            .expect("a module of the crate")
    }

    /// The modules written `"a/b"`, as a set.
    fn modules(paths: &[&str]) -> BTreeSet<ModulePath> {
        paths.iter().map(|path| module_of(path)).collect()
    }

    #[test]
    fn files_name_modules() {
        assert_eq!(module_path(Path::new("lib.rs")), module_of(""));
        assert_eq!(module_path(Path::new("main.rs")), module_of(""));
        assert_eq!(module_path(Path::new("peer/mod.rs")), module_of("peer"));
        assert_eq!(
            module_path(Path::new("peer/storage.rs")),
            module_of("peer/storage")
        );
    }

    #[test]
    fn siblings_that_use_each_other_are_a_circle() {
        let sources = crate_of(&[
            ("", "mod a;\nmod b;\n"),
            ("a", "use crate::b::B;\npub struct A;\n"),
            ("b", "use super::a::A;\npub struct B;\n"),
        ]);
        assert_eq!(find_circles(&sources), [(module_of("a"), module_of("b"))]);
    }

    #[test]
    fn a_parent_and_its_child_are_not_a_circle() {
        let sources = crate_of(&[
            ("", "mod peer;\n"),
            ("peer", "mod storage;\nuse self::storage::Storage;\n"),
            ("peer/storage", "use super::Peer;\n"),
        ]);
        assert_eq!(edges_from(&sources, "peer"), modules(&["peer/storage"]));
        assert_eq!(edges_from(&sources, "peer/storage"), modules(&["peer"]));
        assert!(find_circles(&sources).is_empty());
    }

    #[test]
    fn each_group_member_extends_the_prefix() {
        let sources = crate_of(&[
            ("", ""),
            ("a", ""),
            ("a/b", ""),
            ("a/c", ""),
            ("x", "use crate::a::{b::X, c};\n"),
        ]);
        assert_eq!(edges_from(&sources, "x"), modules(&["a", "a/b", "a/c"]));
    }

    #[test]
    fn a_group_member_that_is_not_a_module_lies_in_the_prefix() {
        let sources = crate_of(&[("", ""), ("a", ""), ("x", "use crate::a::{C, f as g};\n")]);
        assert_eq!(edges_from(&sources, "x"), modules(&["a"]));
    }

    #[test]
    fn each_leading_super_climbs_one_level() {
        let sources = crate_of(&[
            ("", ""),
            ("x", ""),
            ("a", ""),
            ("a/x", ""),
            ("a/b", "use super::super::x::X;\n"),
            ("a/b/c", "use super::super::x::X;\n"),
        ]);
        assert_eq!(edges_from(&sources, "a/b"), modules(&["x"]));
        assert_eq!(edges_from(&sources, "a/b/c"), modules(&["a/x"]));
    }

    #[test]
    fn unit_tests_and_comments_are_ignored() {
        let code = "// use crate::b::B;\n\
                    /// See crate::c::C.\n\
                    pub fn f() {} // crate::c::C\n\
                    #[cfg(test)]\n\
                    mod tests {\n    use crate::d::D;\n}\n\
                    use crate::e::E;\n";
        let sources = crate_of(&[
            ("", ""),
            ("a", code),
            ("b", ""),
            ("c", ""),
            ("d", ""),
            ("e", ""),
        ]);
        assert_eq!(edges_from(&sources, "a"), BTreeSet::new());
    }

    #[test]
    fn only_paths_that_start_a_word_and_name_a_segment_count() {
        let code = "use my_crate::a;\nuse crate::{b, c};\nuse self::*;\nfn f() { $crate::d::f() }";
        let paths = path_references(code);
        assert_eq!(
            paths,
            [PathRef {
                anchor: Anchor::Crate,
                segments: vec!["d".to_string(), "f".to_string()],
                group: None,
            }]
        );
    }
}
