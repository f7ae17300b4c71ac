//! The cl.exe / clang-cl flag table: each row says how an option takes its value and what it
//! means for the cache (an output, an input to hash, a plain keyed flag, or a reason to pass the
//! call through).

use crate::compiler::ColorChoice;
use crate::compiler::args::{Flag, ValueStyle, ValueStyle::*};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CompileOnly,
    /// `/Fo`: the object's path, or a directory for it (ends in `/`).
    Output,
    /// `/E`, `/EP`, `/P`: preprocess instead of compiling.
    Preprocess,
    /// `/Tc file`, `/Tp file`: a source of the given language, whatever its extension.
    SourceAs(&'static str),
    /// `/TC`, `/TP`: every source is C, or C++.
    AllAs(&'static str),
    /// `/I`, `/external:I`, `-imsvc`.
    IncludeDir,
    /// `/X`: the `INCLUDE` directories are not searched.
    NoStdInc,
    /// `/FI`: a header included before the source.
    ForcedInclude,
    Plain,
    /// `/FC`: diagnostics name files by their absolute path.
    FullPaths,
    /// `/showIncludes`: the header listing on stdout (replayed byte for byte on a hit).
    ShowIncludes,
    /// `/showIncludes:user`: the listing without system headers (not a complete include set).
    ShowIncludesUser,
    /// `/Z7`: CodeView debug info in the object.
    DebugInObject,
    /// `/Zi`, `/ZI`: a PDB (cl.exe); see the module comment.
    DebugPdb,
    /// `/Yc`: creates a precompiled header.
    PchCreate,
    /// `/Yu`: uses a precompiled header.
    PchUse,
    /// `/Fp`: the precompiled header's file.
    PchFile,
    /// `/link`: everything after it is for the linker.
    Link,
    /// `/sourceDependencies file|dir`: a JSON listing written beside the object.
    SourceDependencies,
    /// A file whose content changes the output without passing through the preprocessor.
    InputFile,
    /// `-Xclang <cc1 option>`.
    Xclang,
    Color(ColorChoice),
    Informational,
    ExtraOutputs(&'static str),
    TooHard(&'static str),
}

use Kind::*;

const fn f(name: &'static str, style: ValueStyle, kind: Kind) -> Flag<Kind> {
    Flag { name, style, kind }
}

/// cl.exe's options, named without their leading `/` or `-` (both spellings are accepted). Exact
/// names win over prefixes; among prefixes the longest wins. Options are case-sensitive.
pub static TABLE: &[Flag<Kind>] = &[
    f("c", None, CompileOnly),
    f("Fo", Joined, Output),
    f("Fe", Joined, Plain),
    f("Fd", Joined, Plain),
    f("Fp", Joined, PchFile),
    f("Fi", Joined, Plain),
    f("Fm", Joined, Plain),
    f("Fa", Joined, ExtraOutputs("/Fa")),
    f("FA", Joined, ExtraOutputs("/FA")),
    f("FR", Joined, ExtraOutputs("/FR")),
    f("Fr", Joined, ExtraOutputs("/Fr")),
    f("Fx", None, ExtraOutputs("/Fx")),
    f("FI", JoinedOrSeparate, ForcedInclude),
    f("FC", None, FullPaths),
    f("FS", None, Plain),
    f("FU", JoinedOrSeparate, TooHard("/FU")),
    f("AI", JoinedOrSeparate, TooHard("/AI")),
    f("E", None, Preprocess),
    f("EP", None, Preprocess),
    f("P", None, Preprocess),
    f("EH", Joined, Plain),
    f("Tc", JoinedOrSeparate, SourceAs("c")),
    f("Tp", JoinedOrSeparate, SourceAs("c++")),
    f("TC", None, AllAs("c")),
    f("TP", None, AllAs("c++")),
    f("I", JoinedOrSeparate, IncludeDir),
    f("external:I", JoinedOrSeparate, IncludeDir),
    f("external:W", Joined, Plain),
    f("external:anglebrackets", None, Plain),
    f("external:templates", Joined, Plain),
    f("external:env:", Joined, TooHard("/external:env")),
    f("imsvc", JoinedOrSeparate, IncludeDir),
    f("X", None, NoStdInc),
    f("D", JoinedOrSeparate, Plain),
    f("U", JoinedOrSeparate, Plain),
    f("u", None, Plain),
    f("std:", Joined, Plain),
    f("O", Joined, Plain),
    f("W", Joined, Plain),
    f("w", Joined, Plain),
    f("G", Joined, Plain),
    f("Gm", None, ExtraOutputs("/Gm")),
    f("guard:", Joined, Plain),
    f("M", Joined, Plain),
    f("LD", Joined, Plain),
    f("LN", None, Plain),
    f("Z7", None, DebugInObject),
    f("Zi", None, DebugPdb),
    f("ZI", None, DebugPdb),
    f("Zc:", Joined, Plain),
    f("Zp", Joined, Plain),
    f("Zl", None, Plain),
    f("Za", None, Plain),
    f("Ze", None, Plain),
    f("Zf", None, Plain),
    f("Zo", Joined, Plain),
    f("Zm", Joined, Plain),
    f("ZH:", Joined, Plain),
    f("Zs", None, TooHard("/Zs")),
    f("ZW", Joined, TooHard("/ZW")),
    f("Yc", Joined, PchCreate),
    f("Yu", Joined, PchUse),
    f("Y-", None, Plain),
    f("Yd", None, Plain),
    f("Yl", Joined, Plain),
    f("showIncludes", None, ShowIncludes),
    f("showIncludes:user", None, ShowIncludesUser),
    f("showFilenames", Joined, Plain),
    f("sourceDependencies", JoinedOrSeparate, SourceDependencies),
    f(
        "sourceDependencies:directives",
        JoinedOrSeparate,
        ExtraOutputs("/sourceDependencies:directives"),
    ),
    f("link", None, Link),
    f("nologo", Joined, Plain),
    f("bigobj", None, Plain),
    f("arch:", Joined, Plain),
    f("favor:", Joined, Plain),
    f("fp:", Joined, Plain),
    f("Q", Joined, Plain),
    f("openmp", Joined, Plain),
    f("permissive", Joined, Plain),
    f("volatile:", Joined, Plain),
    f("vd", Joined, Plain),
    f("vm", Joined, Plain),
    f("utf-8", None, Plain),
    f("source-charset:", Joined, Plain),
    f("execution-charset:", Joined, Plain),
    f("validate-charset", Joined, Plain),
    f("diagnostics:", Joined, Plain),
    f("errorReport:", Joined, Plain),
    f("analyze", Joined, ExtraOutputs("/analyze")),
    f("await", Joined, Plain),
    f("Brepro", Joined, Plain),
    f("Bt", Joined, TooHard("/Bt")),
    f("Bv", None, Informational),
    f("J", None, Plain),
    f("kernel", Joined, Plain),
    f("hotpatch", None, Plain),
    f("RTC", Joined, Plain),
    f("sdl", Joined, Plain),
    f("constexpr:", Joined, Plain),
    f("cgthreads", Joined, Plain),
    f("tune:", Joined, Plain),
    f("clr", Joined, TooHard("/clr")),
    f("doc", Joined, ExtraOutputs("/doc")),
    f("d1", Joined, TooHard("/d1, /d2 (internal options)")),
    f("d2", Joined, TooHard("/d1, /d2 (internal options)")),
    f("clang:", Joined, TooHard("/clang:")),
    f("o", JoinedOrSeparate, TooHard("-o (use /Fo)")),
    f("?", None, Informational),
    f("help", None, Informational),
];

/// clang's own (GCC-style) options that clang-cl accepts, matched with their leading `-`, before
/// the table above. The specific rows come first in meaning: longest prefix wins.
pub static CLANG_TABLE: &[Flag<Kind>] = &[
    f("-fcolor-diagnostics", None, Color(ColorChoice::Always)),
    f("-fno-color-diagnostics", None, Color(ColorChoice::Never)),
    f("-f", Joined, Plain),
    f("-fprofile-instr-use=", Joined, InputFile),
    f("-fprofile-use=", Joined, InputFile),
    f("-fsanitize-blacklist=", Joined, InputFile),
    f("-fsanitize-ignorelist=", Joined, InputFile),
    f("-fprofile-use", None, TooHard("-fprofile-use without a file")),
    f("-ftime-trace", Joined, ExtraOutputs("-ftime-trace")),
    f("-fmodules", Joined, TooHard("clang modules")),
    f("-fmodule-file=", Joined, TooHard("clang modules")),
    f("-fsyntax-only", None, TooHard("-fsyntax-only")),
    f("-m", Joined, Plain),
    f("-Xclang", Separate, Xclang),
    f("-target", Separate, Plain),
    f("--target=", Joined, Plain),
    f("-v", None, TooHard("-v")),
    f("-###", None, Informational),
    f("--version", None, Informational),
];
