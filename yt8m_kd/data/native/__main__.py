"""`python -m yt8m_kd.data.native`: build the native frame decoder now."""

from yt8m_kd.data.native import main

main()
