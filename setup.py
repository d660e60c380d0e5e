from setuptools import find_packages, setup

setup(
    name="glancesync",
    version="2.0.0",
    description="Keep OpenStack Glance images in step across regions and clouds",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="Apache-2.0",
    packages=find_packages(include=["glancesync", "glancesync.*"]),
    python_requires=">=3.10",
    install_requires=[
        line.strip()
        for line in open("requirements.txt", encoding="utf-8")
        if line.strip() and not line.startswith("#")
    ],
    entry_points={"console_scripts": ["glancesync = glancesync.cli:main"]},
)
