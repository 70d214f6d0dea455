# Finds moeforge's dependencies: Debian packages for the C++ libraries, and libtorch either from
# -DTorch_DIR=... (any libtorch >= 2.4) or from the project virtualenv's PyPI torch wheel.
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)  # libyaml-dev: mergekit's YAML configs (io/yaml.h)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)   # libzstd-dev: .zst data files (data/text_file.h)
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)  # libtomlplusplus-dev: TOML recipes and jobs (io/toml.h)
find_package(Threads REQUIRED)

# Parquet data files (optional): Debian 12 has no Arrow, but the pyarrow wheel ships libarrow and
# libparquet with their headers. Found like libtorch: -DMOEFORGE_PYARROW_DIR=<pyarrow package dir>,
# else the venv's pyarrow. Without it, .parquet inputs are refused with how to enable them.
set(MOEFORGE_PYARROW_DIR "" CACHE PATH "pyarrow package directory (include/, libarrow.so.*, libparquet.so.*)")
if(NOT MOEFORGE_PYARROW_DIR AND EXISTS "${MOEFORGE_PYTHON}")
  execute_process(
    COMMAND "${MOEFORGE_PYTHON}" -c "import os, sys, pyarrow; sys.stdout.write(os.path.dirname(pyarrow.__file__))"
    OUTPUT_VARIABLE _pyarrow_dir RESULT_VARIABLE _pyarrow_rc ERROR_QUIET)
  if(_pyarrow_rc EQUAL 0)
    set(MOEFORGE_PYARROW_DIR "${_pyarrow_dir}")
  endif()
endif()
set(MOEFORGE_WITH_PARQUET OFF)
if(MOEFORGE_PYARROW_DIR)
  file(GLOB _arrow_lib "${MOEFORGE_PYARROW_DIR}/libarrow.so.[0-9]*")
  file(GLOB _parquet_lib "${MOEFORGE_PYARROW_DIR}/libparquet.so.[0-9]*")
  if(_arrow_lib AND _parquet_lib AND EXISTS "${MOEFORGE_PYARROW_DIR}/include/parquet/arrow/reader.h")
    list(GET _arrow_lib 0 _arrow_lib)
    list(GET _parquet_lib 0 _parquet_lib)
    foreach(_lib arrow parquet)
      add_library(moeforge_pyarrow::${_lib} SHARED IMPORTED)
      set_target_properties(moeforge_pyarrow::${_lib} PROPERTIES IMPORTED_LOCATION "${_${_lib}_lib}"
                            INTERFACE_INCLUDE_DIRECTORIES "${MOEFORGE_PYARROW_DIR}/include")
    endforeach()
    set(MOEFORGE_WITH_PARQUET ON)
    message(STATUS "moeforge: Parquet through pyarrow's ${_parquet_lib}")
  endif()
endif()
if(NOT MOEFORGE_WITH_PARQUET)
  message(STATUS "moeforge: no pyarrow libarrow/libparquet found: .parquet inputs will be refused")
endif()

if(MOEFORGE_WITH_TORCH)
  if(NOT Torch_DIR AND EXISTS "${MOEFORGE_PYTHON}")
    execute_process(
      COMMAND "${MOEFORGE_PYTHON}" -c "import torch, sys; sys.stdout.write(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE MOEFORGE_TORCH_PREFIX RESULT_VARIABLE torch_probe_rc ERROR_QUIET)
    if(torch_probe_rc EQUAL 0 AND MOEFORGE_TORCH_PREFIX)
      set(Torch_DIR "${MOEFORGE_TORCH_PREFIX}/Torch" CACHE PATH "libtorch CMake config directory")
    endif()
  endif()
  # No GPU on the build machines: name an architecture so the CUDA-enabled libtorch configures
  # without probing a device (the runtime still runs on any GPU the wheel supports).
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0" CACHE STRING "")
  endif()
  find_package(Torch REQUIRED)
  if(Torch_VERSION VERSION_LESS 2.4)
    message(FATAL_ERROR "moeforge needs libtorch >= 2.4; found ${Torch_VERSION} at ${Torch_DIR}")
  endif()
  # libtorch's flags carry -D_GLIBCXX_USE_CXX11_ABI=...; apply them everywhere so every target
  # (including the torch-free ones linked into the same binary) shares the ABI.
  separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  add_compile_options(${_torch_flags})
  # A wheel's libtorch_cuda finds its CUDA libraries (NCCL, cuDNN, ...) in site-packages/nvidia/*/lib
  # through its own RPATH at run time; tell the linker too, or it resolves them against an older
  # system CUDA (e.g. /usr/local/cuda/lib/libnccl.so) and reports undefined symbols.
  file(GLOB _wheel_cuda_lib_dirs LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")
  if(_wheel_cuda_lib_dirs)
    list(JOIN _wheel_cuda_lib_dirs ":" _rpath_link)
    add_link_options("LINKER:-rpath-link,${_rpath_link}")
  endif()
  # Some libtorch builds (PyPI 2.11) export their own copy of std::filesystem; a binary whose
  # DT_NEEDED lists libtorch before libstdc++ binds to it and crashes (seen in remove_all). Record
  # libstdc++ first, so the C++ runtime's own definitions win.
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    add_link_options("SHELL:-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state")
  endif()
  # Newer libtorch (2.10+) declares cxx_std_20 on its target: follow it for every target.
  get_target_property(_torch_features torch INTERFACE_COMPILE_FEATURES)
  if(_torch_features AND "cxx_std_20" IN_LIST _torch_features AND CMAKE_CXX_STANDARD LESS 20)
    set(CMAKE_CXX_STANDARD 20)
  endif()
  message(STATUS "moeforge: libtorch ${Torch_VERSION} from ${Torch_DIR}, C++${CMAKE_CXX_STANDARD}")
endif()
