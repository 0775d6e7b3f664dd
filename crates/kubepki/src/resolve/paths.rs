//! Output paths: each one cleaned, kept inside the output folder and away from the names the tool
//! owns there (`layout`), and owned by one item, which owns the CSR path of its certificate too.

use std::ops::Range;

use toml::Spanned;

use crate::layout::{NAME_MAX, PATH_MAX, RESERVED, csr_path, is_temp_name, temp_name_len_max};
use crate::resolve::Cx;
use crate::spec::Node;

/// Who owns an output path.
pub(super) struct Claim {
    item: String,
    /// The path is the CSR path of `item`'s certificate (`layout::csr_path`), not a path it declares.
    csr: bool,
}

/// The help of every clash that involves a CSR path: the user did not write that path, so it says
/// where it comes from.
const CSR_HELP: &str = "a certificate `NAME.crt` (or `.pem`) also owns `NAME.csr`: the CSR of its key is written there when its issuer is an external CA; choose another path";

impl Cx {
    /// An output path of `item` (its key `field`), checked and claimed; empty if it is invalid
    /// (then it is reported and the spec is rejected anyway).
    pub(super) fn path(
        &mut self,
        item: &str,
        s: &Spanned<String>,
        node: Option<&Node>,
        field: &str,
    ) -> String {
        self.output_path(item, s, node, field).unwrap_or_default()
    }

    /// A certificate's paths: its certificate and key, and the CSR path that goes with the
    /// certificate (`layout::csr_path`), claimed too so that no other item writes there.
    pub(super) fn cert_paths(
        &mut self,
        item: &str,
        cert: &Spanned<String>,
        key: &Spanned<String>,
        node: Option<&Node>,
    ) -> (String, String) {
        let cert_path = self.output_path(item, cert, node, "cert");
        if let Some(c) = &cert_path {
            let csr = csr_path(c);
            if let Some(what) = too_long(&csr) {
                self.err(
                    format!("the CSR path of `{item}`, `{csr}`, is too long: {what}"),
                    Some(cert.span()),
                    Some(format!("shorten the certificate's path; {CSR_HELP}")),
                );
            }
            self.claim(item, &csr, true, cert.span());
        }
        let key_path = self.path(item, key, node, "key");
        (cert_path.unwrap_or_default(), key_path)
    }

    /// `Some(path)`, cleaned, if it is valid and `item` now owns it; otherwise reported.
    fn output_path(
        &mut self,
        item: &str,
        s: &Spanned<String>,
        node: Option<&Node>,
        field: &str,
    ) -> Option<String> {
        let p = self.interp(s, node, field)?;
        let bad = p.is_empty()
            || p.starts_with('/')
            || p.contains('\\')
            || p.split('/').any(|c| c == "..")
            || p.ends_with('/');
        let clean: String = p
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/");
        if bad || clean.is_empty() {
            self.err(
                format!("output path `{p}` escapes the output folder"),
                Some(s.span()),
                Some(
                    "write a relative path inside the output folder, without `..`: `pki/ca.crt`"
                        .into(),
                ),
            );
            return None;
        }
        if RESERVED.contains(&clean.as_str()) {
            self.err(
                format!("output path `{clean}` is reserved for the tool"),
                Some(s.span()),
                Some("the tool writes this file itself: choose another name".into()),
            );
            return None;
        }
        let file_name = clean.rsplit('/').next().unwrap_or_default();
        if is_temp_name(file_name) {
            self.err(
                format!("output path `{clean}` is named like a temporary file of the tool"),
                Some(s.span()),
                Some(format!("files named `.NAME.tmp-DIGITS` are taken for what an interrupted run left, and removed; rename `{file_name}`")),
            );
            return None;
        }
        if let Some(what) = too_long(&clean) {
            self.err(
                format!("output path `{clean}` is too long: {what}"),
                Some(s.span()),
                Some(format!(
                    "every file is written through a temporary `.NAME.tmp-PID` beside it, so a file name may have at most {} bytes, a folder name {NAME_MAX}, and the whole path {}; shorten it",
                    NAME_MAX - temp_name_len_max(""),
                    PATH_MAX - temp_name_len_max(""),
                )),
            );
            return None;
        }
        self.claim(item, &clean, false, s.span()).then_some(clean)
    }

    /// Records `item` as the owner of `path` (`csr`: as the CSR path of its certificate); reports
    /// a path that is someone's already. Returns whether the path is `item`'s.
    fn claim(&mut self, item: &str, path: &str, csr: bool, span: Range<usize>) -> bool {
        let Some(owner) = self.paths.get(path) else {
            self.paths.insert(
                path.to_string(),
                Claim {
                    item: item.to_string(),
                    csr,
                },
            );
            return true;
        };
        let o = &owner.item;
        // Two entries of one name (a copied table whose name was not changed) write the same
        // files: that is the duplicate name, reported at the name, not again at each path.
        let base = item.split('@').next().unwrap_or(item);
        if o == item && self.duplicates.contains(base) {
            return false;
        }
        let (message, help) = match (owner.csr, csr) {
            (false, false) => (
                format!("`{item}` writes `{path}`, which `{o}` writes too"),
                "give each file one owner; for per-node entries put `{node}` in the path",
            ),
            (true, false) => (
                format!("`{item}` writes `{path}`, which is the CSR path of `{o}`"),
                CSR_HELP,
            ),
            (false, true) => (
                format!("the CSR path of `{item}`, `{path}`, is written by `{o}` too"),
                CSR_HELP,
            ),
            (true, true) => (
                format!("`{item}` and `{o}` have the same CSR path `{path}`"),
                CSR_HELP,
            ),
        };
        self.err(message, Some(span), Some(help.into()));
        false
    }
}

/// What makes `path` (cleaned, relative to the output folder) longer than the system can write,
/// counting the temporary name its file is written through (`layout::temp_name`): a folder or
/// file name over `NAME_MAX` bytes, or a whole path over `PATH_MAX`. Checked here, the write
/// cannot fail halfway through a run on a name, and every rerun fail the same way.
fn too_long(path: &str) -> Option<String> {
    let (folders, file) = path.rsplit_once('/').unwrap_or(("", path));
    if let Some(f) = folders.split('/').find(|f| f.len() > NAME_MAX) {
        return Some(format!(
            "its folder name `{f}` has {} bytes, more than {NAME_MAX}",
            f.len()
        ));
    }
    let temp = temp_name_len_max(file);
    if temp > NAME_MAX {
        return Some(format!(
            "its file name has {} bytes, and its temporary name {temp}, more than {NAME_MAX}",
            file.len()
        ));
    }
    let whole = path.len() - file.len() + temp;
    (whole > PATH_MAX).then(|| {
        format!(
            "with its temporary name it has {whole} bytes, more than {PATH_MAX}, before the output folder's own path"
        )
    })
}
