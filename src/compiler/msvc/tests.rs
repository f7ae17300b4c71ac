//! The MSVC argument table: outputs, languages, key inputs, and the reasons a call passes through.

use super::*;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("cachepot-msvc-{}", std::process::id()));
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("a.c"), "int x;").unwrap();
    std::fs::write(d.join("b.cpp"), "int y;").unwrap();
    std::fs::write(d.join("weird.src"), "int z;").unwrap();
    std::fs::write(d.join("pch.pch"), "PCH").unwrap();
    d
}

fn parse_env(d: &Path, args: &[&str], env: &[(&str, &str)], clang: bool) -> Result<CCompile, NotCacheable> {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    parse(
        &args,
        d,
        &|var| env.iter().find(|(k, _)| k == var).map(|(_, v)| OsString::from(v)),
        clang,
    )
}

fn cl(d: &Path, args: &[&str]) -> Result<CCompile, NotCacheable> {
    parse_env(d, args, &[], false)
}

fn clang_cl(d: &Path, args: &[&str]) -> Result<CCompile, NotCacheable> {
    parse_env(d, args, &[], true)
}

#[test]
fn names() {
    let real = Path::new("/nonexistent/cl.exe");
    assert_eq!(from_name("cl.exe", real).unwrap().name(), "cl.exe");
    assert_eq!(from_name("CL.EXE", real).unwrap().name(), "cl.exe");
    assert_eq!(from_name("cl", real).unwrap().name(), "cl.exe");
    assert_eq!(from_name("clang-cl", real).unwrap().name(), "clang-cl");
    assert_eq!(from_name("clang-cl-14", real).unwrap().name(), "clang-cl");
    assert!(from_name("clang", real).is_none());
    assert!(from_name("cl-tool", real).is_none());
}

#[test]
fn both_spellings_and_object_names() {
    let d = dir();
    let a = cl(&d, &["/c", "a.c", "/Foout/a.obj", "/O2", "/Iinc", "/DX=1"]).unwrap();
    let b = cl(&d, &["-c", "a.c", "-Foout/a.obj", "-O2", "-Iinc", "-DX=1"]).unwrap();
    assert_eq!(a.outputs[0].path, PathBuf::from("out/a.obj"));
    assert_eq!(b.outputs[0].path, PathBuf::from("out/a.obj"));
    assert_eq!(a.language, "c");
    assert_eq!(a.include_dirs, vec![("/I", PathBuf::from("inc"))]);
    assert!(
        a.key_args.iter().all(|x| !x.to_string_lossy().contains("a.obj")),
        "the object path is not keyed"
    );
    assert_eq!(cl(&d, &["/c", "a.c"]).unwrap().outputs[0].path, PathBuf::from("a.obj"));
    assert_eq!(
        cl(&d, &["/c", "a.c", "/Foout/"]).unwrap().outputs[0].path,
        PathBuf::from("out/a.obj")
    );
    assert_eq!(
        cl(&d, &["/c", "a.c", "/Fofoo"]).unwrap().outputs[0].path,
        PathBuf::from("foo.obj")
    );
    assert_eq!(
        cl(&d, &["/c", "a.c", "/Fofoo.o"]).unwrap().outputs[0].path,
        PathBuf::from("foo.o")
    );
    // A directory without a trailing slash: clang-cl makes `out.obj`; cl.exe is not guessed.
    assert_eq!(
        clang_cl(&d, &["/c", "a.c", "/Foout"]).unwrap().outputs[0].path,
        PathBuf::from("out.obj")
    );
    assert!(matches!(
        cl(&d, &["/c", "a.c", "/Foout"]),
        Err(NotCacheable::TooHard(_))
    ));
    assert!(matches!(
        cl(&d, &["/c", "a.c", "/Fo:a.obj"]),
        Err(NotCacheable::TooHard(_))
    ));
}

#[test]
fn languages() {
    let d = dir();
    assert_eq!(cl(&d, &["/c", "b.cpp"]).unwrap().language, "c++");
    assert_eq!(cl(&d, &["/c", "/TP", "a.c"]).unwrap().language, "c++");
    assert_eq!(
        cl(&d, &["/c", "a.c", "/TP"]).unwrap().language,
        "c++",
        "/TP applies wherever it is"
    );
    assert_eq!(cl(&d, &["/c", "/Tpweird.src"]).unwrap().language, "c++");
    let c = cl(&d, &["/c", "/Tc", "weird.src"]).unwrap();
    assert_eq!(
        (c.language.as_str(), c.source.clone()),
        ("c", PathBuf::from("weird.src"))
    );
    assert_eq!(c.outputs[0].path, PathBuf::from("weird.obj"));
    assert_eq!(cl(&d, &["/c", "weird.src"]).unwrap_err(), NotCacheable::NonSourceInput);
}

#[test]
fn not_cacheable_reasons() {
    let d = dir();
    assert_eq!(cl(&d, &["a.c"]).unwrap_err(), NotCacheable::Linking);
    assert_eq!(cl(&d, &["a.c", "/link", "/c"]).unwrap_err(), NotCacheable::Linking);
    assert_eq!(
        cl(&d, &["/c", "a.c", "/link", "/DEBUG"]).unwrap_err(),
        NotCacheable::TooHard("/link with /c")
    );
    assert_eq!(cl(&d, &["/E", "a.c"]).unwrap_err(), NotCacheable::PreprocessOnly);
    assert_eq!(cl(&d, &["/c", "/EP", "a.c"]).unwrap_err(), NotCacheable::PreprocessOnly);
    assert_eq!(
        cl(&d, &["/c", "/P", "/Fia.i", "a.c"]).unwrap_err(),
        NotCacheable::PreprocessOnly
    );
    assert_eq!(
        cl(&d, &["/c", "a.c", "b.cpp"]).unwrap_err(),
        NotCacheable::MultipleSources
    );
    assert_eq!(cl(&d, &["/c", "nope.c"]).unwrap_err(), NotCacheable::MissingInput);
    assert_eq!(cl(&d, &["/c"]).unwrap_err(), NotCacheable::NoSource);
    assert_eq!(
        cl(&d, &["/c", "a.c", "/frobnicate"]).unwrap_err(),
        NotCacheable::UnsupportedOption
    );
    assert_eq!(
        cl(&d, &["/c", "a.c", "/Ycpch.h"]).unwrap_err(),
        NotCacheable::PrecompiledHeader
    );
    assert_eq!(
        cl(&d, &["/c", "a.c", "/Zi"]).unwrap_err(),
        NotCacheable::TooHard("/Zi, /ZI (a PDB shared between compiles)")
    );
    assert!(matches!(cl(&d, &["/c", "a.c", "/ZI"]), Err(NotCacheable::TooHard(_))));
    assert_eq!(
        cl(&d, &["/c", "a.c", "/FAs"]).unwrap_err(),
        NotCacheable::ExtraOutputs("/FA")
    );
    assert_eq!(
        cl(&d, &["/c", "a.c", "/Fa"]).unwrap_err(),
        NotCacheable::ExtraOutputs("/Fa")
    );
    assert_eq!(cl(&d, &["/?"]).unwrap_err(), NotCacheable::Informational);
    assert_eq!(cl(&d, &["/c", "a.c", "/I"]).unwrap_err(), NotCacheable::BadArguments);
    assert_eq!(
        clang_cl(&d, &["/c", "a.c", "-###"]).unwrap_err(),
        NotCacheable::Informational
    );
    assert_eq!(cl(&d, &["/c", "-"]).unwrap_err(), NotCacheable::StdinInput);
    assert_eq!(
        cl(&d, &["/c", "a.c", "/sourceDependencies", "-"]).unwrap_err(),
        NotCacheable::OutputToStdout
    );
}

#[test]
fn debug_info_and_pdbs() {
    let d = dir();
    let c = cl(&d, &["/c", "a.c", "/Z7", "/Foout/"]).unwrap();
    assert_eq!(
        c.hash_cwd.as_deref(),
        Some(d.as_path()),
        "CodeView records the directory"
    );
    assert_eq!(
        c.output_path_in_key,
        Some(d.join("out/a.obj")),
        "and the object's own path"
    );
    // clang-cl writes no PDB: /Zi is /Z7 there, /ZI is ignored.
    let c = clang_cl(&d, &["/c", "a.c", "/Zi"]).unwrap();
    assert!(c.hash_cwd.is_some());
    let c = clang_cl(&d, &["/c", "a.c", "/ZI"]).unwrap();
    assert!(c.hash_cwd.is_none());
    let c = cl(&d, &["/c", "a.c", "/O2"]).unwrap();
    assert!(c.hash_cwd.is_none() && c.output_path_in_key.is_none());
    assert!(cl(&d, &["/c", "a.c", "/FC"]).unwrap().hash_cwd.is_some());
}

#[test]
fn show_includes_and_source_dependencies() {
    let d = dir();
    let c = cl(&d, &["/c", "a.c", "/showIncludes"]).unwrap();
    assert_eq!(c.dep_style, DepStyle::UserFull);
    assert!(c.key_args.iter().any(|a| a == "-showIncludes"), "it changes stdout");
    assert!(
        c.preprocessor_args
            .iter()
            .all(|a| a != "-showIncludes" && a != "/showIncludes")
    );
    let c = clang_cl(&d, &["/c", "a.c", "/showIncludes:user"]).unwrap();
    assert_eq!(c.dep_style, DepStyle::UserWithoutSystem);
    let c = cl(&d, &["/c", "a.c", "/sourceDependencies", "out/"]).unwrap();
    assert_eq!(c.outputs[1].path, PathBuf::from("out/a.c.json"));
    assert!(c.hash_cwd.is_some(), "the JSON names absolute paths");
    let c = cl(&d, &["/c", "a.c", "/sourceDependencies", "deps.json"]).unwrap();
    assert_eq!(c.outputs[1].path, PathBuf::from("deps.json"));
    assert!(c.key_args.iter().all(|a| a != "deps.json"));
}

#[test]
fn precompiled_header_use_is_an_input() {
    let d = dir();
    let c = cl(&d, &["/c", "a.c", "/Yupch.h"]).unwrap();
    assert_eq!(CL.precompiled_headers(&c, &d), vec![PathBuf::from("pch.pch")]);
    assert!(
        c.preprocessor_args
            .iter()
            .all(|a| !a.as_bytes()[1..].starts_with(b"Yu"))
    );
    let c = cl(&d, &["/c", "a.c", "/Yupch.h", "/Fppch.pch"]).unwrap();
    assert_eq!(CL.precompiled_headers(&c, &d), vec![PathBuf::from("pch.pch")]);
    assert_eq!(
        cl(&d, &["/c", "a.c", "/Yuother.h"]).unwrap_err(),
        NotCacheable::MissingInput
    );
    assert!(CL.precompiled_headers(&cl(&d, &["/c", "a.c"]).unwrap(), &d).is_empty());
}

#[test]
fn cl_environment_variables_are_options() {
    let d = dir();
    let c = parse_env(&d, &["a.c"], &[("CL", "/c /DFROM_CL")], false).unwrap();
    assert!(c.key_args.iter().any(|a| a == "-DFROM_CL"));
    let e = parse_env(&d, &["/c", "a.c"], &[("_CL_", "/E")], false).unwrap_err();
    assert_eq!(e, NotCacheable::PreprocessOnly);
}

#[test]
fn colour_and_clang_options() {
    let d = dir();
    let a = clang_cl(&d, &["/c", "a.c", "-fcolor-diagnostics"]).unwrap();
    let b = clang_cl(&d, &["/c", "a.c"]).unwrap();
    assert_eq!(a.key_args, b.key_args);
    assert_eq!(a.color, ColorChoice::Always);
    assert_eq!(cl(&d, &["/c", "a.c"]).unwrap().color, ColorChoice::Never);
    assert!(clang_cl(&d, &["/c", "a.c", "-mavx2", "-fno-delayed-template-parsing"]).is_ok());
    assert!(matches!(
        clang_cl(&d, &["/c", "a.c", "-Xclang", "-dependency-file"]),
        Err(NotCacheable::TooHard(_))
    ));
}

#[test]
fn every_hashed_flag_changes_the_key() {
    let d = dir();
    let base = cl(&d, &["/c", "a.c"]).unwrap().key_args;
    for flag in [
        "/O2",
        "/DX",
        "/Iinc",
        "/std:c++20",
        "/W4",
        "/MD",
        "/Brepro",
        "/X",
        "/Z7",
        "/EHsc",
        "/GS-",
    ] {
        let c = cl(&d, &["/c", "a.c", flag]).unwrap();
        assert_ne!(c.key_args, base, "{flag}");
    }
}

#[test]
fn absolute_paths_and_double_dash() {
    let d = dir();
    let abs = d.join("a.c");
    let c = clang_cl(&d, &["/c", abs.to_str().unwrap()]).unwrap();
    assert_eq!(c.source, abs);
    let c = clang_cl(&d, &["/c", "--", "a.c"]).unwrap();
    assert_eq!(c.source, PathBuf::from("a.c"));
}

#[test]
fn line_directives_of_both_compilers() {
    let text = b"# 1 \"a.c\"\n# 1 \"<built-in>\" 1\n# 1 \"inc/h.h\" 1\n#line 1 \"c:\\\\src\\\\g.h\"\nint x;\n";
    assert_eq!(
        line_directives(text),
        vec![
            PathBuf::from("a.c"),
            PathBuf::from("inc/h.h"),
            PathBuf::from("c:\\src\\g.h")
        ]
    );
}

#[test]
fn dash_and_slash_spellings_share_a_key() {
    let d = dir();
    let a = cl(&d, &["/c", "a.c", "/O2", "/Iinc", "/DX=1"]).unwrap();
    let b = cl(&d, &["-c", "a.c", "-O2", "-Iinc", "-DX=1"]).unwrap();
    assert_eq!(a.key_args, b.key_args);
}

/// Walk the table: every row that is keyed changes the key, in both spellings, and no row that
/// names an output or a listing puts its file name into the key.
#[test]
fn every_keyed_row_changes_the_key() {
    let d = dir();
    let base = cl(&d, &["/c", "a.c"]).unwrap().key_args;
    for row in table::TABLE.iter().chain(table::CLANG_TABLE) {
        let name = row.name.trim_start_matches('-');
        let value = match row.style {
            crate::compiler::args::ValueStyle::None => "",
            _ => "v1",
        };
        for prefix in ["/", "-"] {
            if row.name.starts_with('-') && prefix == "/" {
                continue; // clang's own options take only their dash
            }
            let dash = if row.name.starts_with("--") { "--" } else { prefix };
            let arg = format!("{dash}{name}{value}");
            let got = parse_env(&d, &["/c", "a.c", &arg], &[], true);
            match (row.kind, got) {
                (Kind::Plain | Kind::NoStdInc | Kind::IncludeDir | Kind::FullPaths | Kind::DebugInObject, Ok(c)) => {
                    assert_ne!(c.key_args, base, "{arg}")
                }
                (Kind::ShowIncludes | Kind::ShowIncludesUser | Kind::AllAs(_) | Kind::Xclang, Ok(c)) => {
                    assert_ne!(c.key_args, base, "{arg}")
                }
                (Kind::Output | Kind::SourceDependencies | Kind::Color(_), Ok(c)) => {
                    assert!(
                        c.key_args.iter().all(|a| a.as_bytes().windows(2).all(|w| w != b"v1")),
                        "{arg}"
                    )
                }
                (_, _) => {}
            }
        }
    }
}
