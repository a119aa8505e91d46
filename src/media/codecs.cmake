# Audio codecs (sgw_codecs): included from src/media/CMakeLists.txt.
# G.711/G.722 from spandsp (LGPL), Opus from libopus (BSD), G.729 from bcg729
# (GPL-3.0) only when SGW_WITH_G729 is ON — see docs/codecs.md and README §Licence.
pkg_check_modules(SPANDSP REQUIRED IMPORTED_TARGET GLOBAL spandsp)
pkg_check_modules(OPUS REQUIRED IMPORTED_TARGET GLOBAL opus)

set(_sgw_codec_sources codec.cc)
set(_sgw_codec_deps sgw_common PkgConfig::SPANDSP PkgConfig::OPUS)
if(SGW_WITH_G729)
  # Debian's libbcg729-dev ships libbcg729.pc; fall back to a plain library search.
  pkg_check_modules(BCG729 IMPORTED_TARGET GLOBAL libbcg729)
  if(TARGET PkgConfig::BCG729)
    list(APPEND _sgw_codec_deps PkgConfig::BCG729)
  else()
    find_path(BCG729_INCLUDE_DIR bcg729/decoder.h REQUIRED)
    find_library(BCG729_LIBRARY bcg729 REQUIRED)
    add_library(sgw_bcg729 INTERFACE)
    target_include_directories(sgw_bcg729 SYSTEM INTERFACE ${BCG729_INCLUDE_DIR})
    target_link_libraries(sgw_bcg729 INTERFACE ${BCG729_LIBRARY})
    list(APPEND _sgw_codec_deps sgw_bcg729)
  endif()
  list(APPEND _sgw_codec_sources codec_g729.cc)
endif()

sgw_layer(codecs SOURCES ${_sgw_codec_sources} DEPS ${_sgw_codec_deps})
if(SGW_WITH_G729)
  # PUBLIC so that code offering codecs can also test it at compile time;
  # codec_available() is the run-time answer.
  target_compile_definitions(sgw_codecs PUBLIC SGW_WITH_G729=1)
endif()
unset(_sgw_codec_sources)
unset(_sgw_codec_deps)
