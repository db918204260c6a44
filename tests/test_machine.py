"""yt8m_kd.machine: what a benchmark's JSON says about the machine it ran on."""

from yt8m_kd import machine


def test_cpu_info_reads_the_first_cpus_model_and_bf16_features(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n\n"
        "processor\t: 1\nmodel name\t: Other CPU\nflags\t\t: fpu amx_bf16\n"
    )
    assert machine.cpu_info(str(cpuinfo)) == {
        "cpu_model": "Some CPU",
        "cpu_bf16_features": ["avx512_bf16", "amx_tile"],
    }
    assert machine.cpu_info(str(tmp_path / "absent")) == {}


def test_machine_info_keeps_the_versions_given():
    info = machine.machine_info(tensorflow="x.y")
    assert info["tensorflow"] == "x.y" and info["cpu_count"] >= 1
