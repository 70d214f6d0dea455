# Test data (real tokenizers, the Brown corpus): MOEFORGE_SHARED_DATA is the directory the tests read.
#   default (empty or unset): data/testdata.tar.xz, unpacked at configure time into BUILD_DIR/testdata
#                             (again whenever the archive changes; tools/make_testdata.sh rebuilds it)
#   -DMOEFORGE_SHARED_DATA=DIR or, when that is not given, the environment variable of the same name
#   at configure time: DIR (same layout: tokenizers/<name>/, corpus/brown/).
# After this file, ${MOEFORGE_SHARED_DATA} (a normal variable over the cache entry) is the resolved path.
set(MOEFORGE_TESTDATA_ARCHIVE "${CMAKE_SOURCE_DIR}/data/testdata.tar.xz")
set(MOEFORGE_TESTDATA_UNPACKED "${CMAKE_BINARY_DIR}/testdata")
set(MOEFORGE_SHARED_DATA "" CACHE PATH
    "Directory with the real tokenizers and corpora the tests read; empty: data/testdata.tar.xz unpacked into the build tree")

set(_shared_data "${MOEFORGE_SHARED_DATA}")
# Build trees configured before the data were in the repository cached the old default, the literal
# string SOURCE/../shared/data: no choice of the user's, so it gives way to the in-repo copy.
if(_shared_data STREQUAL "${CMAKE_SOURCE_DIR}/../shared/data" OR _shared_data STREQUAL MOEFORGE_TESTDATA_UNPACKED)
  if(_shared_data STREQUAL "${CMAKE_SOURCE_DIR}/../shared/data")
    message(STATUS "MOEFORGE_SHARED_DATA: the cached old default ${_shared_data} is dropped (in-repo test data now)")
  endif()
  set(MOEFORGE_SHARED_DATA "" CACHE PATH
      "Directory with the real tokenizers and corpora the tests read; empty: data/testdata.tar.xz unpacked into the build tree" FORCE)
  set(_shared_data "")
endif()
if(NOT _shared_data AND NOT "$ENV{MOEFORGE_SHARED_DATA}" STREQUAL "")
  set(_shared_data "$ENV{MOEFORGE_SHARED_DATA}")
  message(STATUS "MOEFORGE_SHARED_DATA from the environment: ${_shared_data}")
endif()
if(_shared_data AND NOT IS_DIRECTORY "${_shared_data}/tokenizers")
  message(WARNING "MOEFORGE_SHARED_DATA=${_shared_data} has no tokenizers/ folder; "
                  "using the in-repo test data (data/testdata.tar.xz) instead")
  set(_shared_data "")
endif()

if(_shared_data)
  get_filename_component(_shared_data "${_shared_data}" ABSOLUTE)
elseif(NOT EXISTS "${MOEFORGE_TESTDATA_ARCHIVE}")
  message(WARNING "${MOEFORGE_TESTDATA_ARCHIVE} is missing: tests that read real tokenizers will fail "
                  "(set MOEFORGE_SHARED_DATA to a directory with tokenizers/ and corpus/)")
  set(_shared_data "${MOEFORGE_TESTDATA_UNPACKED}")
else()
  # Unpack once per archive version: the stamp holds the archive's hash; a changed archive re-runs
  # CMake (CMAKE_CONFIGURE_DEPENDS) and is unpacked afresh (into a temporary folder, then renamed).
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${MOEFORGE_TESTDATA_ARCHIVE}")
  file(SHA256 "${MOEFORGE_TESTDATA_ARCHIVE}" _archive_hash)
  set(_stamp "${MOEFORGE_TESTDATA_UNPACKED}/.archive-sha256")
  set(_unpacked_hash "")
  if(EXISTS "${_stamp}")
    file(READ "${_stamp}" _unpacked_hash)
    string(STRIP "${_unpacked_hash}" _unpacked_hash)
  endif()
  if(NOT _unpacked_hash STREQUAL _archive_hash)
    message(STATUS "Unpacking data/testdata.tar.xz into ${MOEFORGE_TESTDATA_UNPACKED}")
    set(_tmp "${MOEFORGE_TESTDATA_UNPACKED}.tmp")
    file(REMOVE_RECURSE "${_tmp}" "${MOEFORGE_TESTDATA_UNPACKED}")
    file(ARCHIVE_EXTRACT INPUT "${MOEFORGE_TESTDATA_ARCHIVE}" DESTINATION "${_tmp}")
    if(NOT IS_DIRECTORY "${_tmp}/tokenizers" OR NOT IS_DIRECTORY "${_tmp}/corpus/brown")
      message(FATAL_ERROR "${MOEFORGE_TESTDATA_ARCHIVE} did not unpack to tokenizers/ and corpus/brown/")
    endif()
    file(WRITE "${_tmp}/.archive-sha256" "${_archive_hash}\n")
    file(RENAME "${_tmp}" "${MOEFORGE_TESTDATA_UNPACKED}")
  endif()
  set(_shared_data "${MOEFORGE_TESTDATA_UNPACKED}")
endif()
message(STATUS "Test data (MOEFORGE_SHARED_DATA): ${_shared_data}")
set(MOEFORGE_SHARED_DATA "${_shared_data}")
unset(_shared_data)
